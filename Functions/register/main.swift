import SharedKit
import SharedKitRuntime

// Everything that issues an emailed code.
Services.start(function: "register").serve(
    Router<Context>()
        .post("/api/v1/register", Registration.register)
        .post("/api/v1/register/resend", Registration.resend)
        .post("/api/v1/password/forgot", Registration.forgotPassword)
)
