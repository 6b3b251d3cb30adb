import SharedKit

// Everything that redeems an emailed code.
FunctionRuntime(name: "verify-otp").serve(
    Router()
        .post("/api/v1/verify-otp", CodeRedemption.verifyEmail)
        .post("/api/v1/password/reset", CodeRedemption.resetPassword)
)
