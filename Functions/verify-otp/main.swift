import SharedKit
import SharedKitRuntime

// Everything that redeems an emailed code.
Services.start(function: "verify-otp").serve(
    Router<Context>()
        .post("/api/v1/verify-otp", CodeRedemption.verifyEmail)
        .post("/api/v1/password/reset", CodeRedemption.resetPassword)
)
