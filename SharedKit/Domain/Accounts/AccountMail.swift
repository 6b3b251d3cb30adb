/// The messages accounts send. Links and names come from `PUBLIC_BASE_URL`, never from a request.
public enum AccountMail {
    /// A sign-up's code. `again`: the address already had a sign-up waiting for its code, and this code
    /// belongs to the new one (with the password chosen there); the earlier code still works for its own.
    public static func verificationCode(to email: String, code: String, baseURL: String, again: Bool = false) -> MailMessage {
        let warning =
            again
            ? "This address was just signed up again. This code finishes that newest sign-up, with the password chosen in it; if that was not you, do not enter it (the code from your own sign-up still works)."
            : "If you did not sign up, ignore this email; no account is created without the code."
        return MailMessage(
            to: email,
            subject: "Your Atelier code: \(code)",
            text: """
                Welcome to Atelier.

                Your verification code is \(code). It is valid for 10 minutes.
                Enter it at \(baseURL)/verify to finish creating your account.

                \(warning)
                """,
            html: page(
                """
                <p>Welcome to Atelier.</p>
                <p>Your verification code is <strong style="font-size:22px;letter-spacing:3px">\(code)</strong>. It is valid for 10 minutes.</p>
                <p>Enter it at <a href="\(baseURL)/verify">\(baseURL)/verify</a> to finish creating your account.</p>
                <p style="color:#666">\(warning)</p>
                """))
    }

    public static func resetCode(to email: String, code: String, baseURL: String) -> MailMessage {
        MailMessage(
            to: email,
            subject: "Your Atelier password reset code: \(code)",
            text: """
                Someone (hopefully you) asked to reset the password of your Atelier account.

                Your reset code is \(code). It is valid for 10 minutes.
                Enter it at \(baseURL)/reset with your new password.

                Resetting the password also signs out every session and revokes the account's API keys.
                If it was not you, ignore this email: your password stays as it is.
                """,
            html: page(
                """
                <p>Someone (hopefully you) asked to reset the password of your Atelier account.</p>
                <p>Your reset code is <strong style="font-size:22px;letter-spacing:3px">\(code)</strong>. It is valid for 10 minutes.</p>
                <p>Enter it at <a href="\(baseURL)/reset">\(baseURL)/reset</a> with your new password.</p>
                <p>Resetting the password also signs out every session and revokes the account's API keys.</p>
                <p style="color:#666">If it was not you, ignore this email: your password stays as it is.</p>
                """))
    }

    public static func registrationAttempt(to email: String, baseURL: String) -> MailMessage {
        MailMessage(
            to: email,
            subject: "Someone tried to sign up with your email",
            text: """
                Someone tried to create an Atelier account with this email address, which already has one.
                Nothing was changed.

                If it was you, log in at \(baseURL)/login, or reset your password at \(baseURL)/forgot.
                """,
            html: page(
                """
                <p>Someone tried to create an Atelier account with this email address, which already has one. Nothing was changed.</p>
                <p>If it was you, <a href="\(baseURL)/login">log in</a>, or <a href="\(baseURL)/forgot">reset your password</a>.</p>
                """))
    }

    static func page(_ body: String) -> String {
        """
        <!doctype html><html><body style="font-family:system-ui,sans-serif;color:#1d1d1f;max-width:32rem;margin:auto">
        <h2 style="font-weight:600">Atelier</h2>
        \(body)
        </body></html>
        """
    }
}
