import SharedKit

// Everything that issues an emailed code.
FunctionRuntime(name: "register").serve(
    Router()
        .post("/api/v1/register", Registration.register)
        .post("/api/v1/register/resend", Registration.resend)
        .post("/api/v1/password/forgot", Registration.forgotPassword)
)
