import SharedKit
import SharedKitRuntime

Services.start(function: "razorpay-webhook").serve(
    Router<Context>()
        .post("/hooks/razorpay", maxBodyBytes: 256 * 1024, RazorpayWebhook.receive)
)
