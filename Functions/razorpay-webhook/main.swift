import SharedKit

FunctionRuntime(name: "razorpay-webhook").serve(
    Router()
        .post("/hooks/razorpay", maxBodyBytes: 256 * 1024, RazorpayWebhook.receive)
)
