"""Mail and TLS: credentials for the SMTP server never travel in clear unless the operator says so.

Each case runs the `register` function once as plain CGI (the same binary nginx reaches over FastCGI; as
CGI it sends its mail after writing the answer, before it exits) with the stack's database and Redis and
an SMTP configuration of its own, against an SMTP fake on a free port. The fake follows RFC 3207: with a
certificate it advertises STARTTLS and takes AUTH and MAIL only after the handshake; without one it looks
like a server whose STARTTLS a network attacker has stripped from the EHLO answer.

The suite's own fake (conftest.smtp) requires STARTTLS too, so every other mail of the suite also goes
through the TLS path: these cases cover the refusals and the explicit opt-out."""
import json
import os
import subprocess
import uuid

from fakes.smtp import SMTPFake

PASSWORD = "Correct-Horse-" + uuid.uuid4().hex[:10]


def register_as_cgi(stack, smtp_env, remote="127.0.9.1"):
    """POST /api/v1/register through the binary run as CGI; returns (status line, stderr, email)."""
    email = f"tls-{uuid.uuid4().hex}@example.test"
    body = json.dumps({"email": email, "password": PASSWORD}).encode()
    env = stack.app_env()
    for name in ("SMTP_URL", "SMTP_TLS", "SMTP_CA_FILE"):
        env.pop(name, None)
    env.update(smtp_env)
    env.update({"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "POST", "REQUEST_URI": "/api/v1/register",
                "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": remote,
                "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body))})
    run = subprocess.run([os.path.join(stack.bin_dir, "register")], input=body, env=env, capture_output=True,
                         timeout=30)
    return run.stdout.split(b"\r\n", 1)[0].decode(), run.stderr.decode(errors="replace"), email


def auth_lines(fake):
    return [line for _, line in fake.transcript if line.upper().startswith("AUTH")]


def test_credentials_are_never_sent_when_starttls_is_missing(stack):
    """A server that offers no STARTTLS (stripped): the delivery fails and no AUTH is ever sent."""
    with SMTPFake(user="atelier", password="fake-pass") as fake:
        status, log, email = register_as_cgi(stack, {"SMTP_URL": fake.url})
        assert status == "Status: 202 Accepted", (status, log)
        assert fake.messages_to(email) == []
        assert auth_lines(fake) == [], fake.transcript
        assert "mail delivery failed" in log, log
        assert "fake-pass" not in log


def test_starttls_then_credentials_with_a_trusted_certificate(stack):
    with SMTPFake(user="atelier", password="fake-pass",
                  tls=(os.environ["SMTP_FAKE_CERT"], os.environ["SMTP_FAKE_KEY"])) as fake:
        status, log, email = register_as_cgi(stack, {"SMTP_URL": fake.url, "SMTP_CA_FILE": os.environ["SMTP_CA_FILE"]})
        assert status == "Status: 202 Accepted", (status, log)
        [message] = fake.wait_for(email)
        assert message.tls and message.auth_user == "atelier"
        lines = [line for _, line in fake.transcript]
        assert lines.index("STARTTLS") < lines.index("(TLS established)") < lines.index(auth_lines(fake)[0]), lines


def test_an_untrusted_certificate_stops_the_delivery_before_any_credential(stack):
    """Without SMTP_CA_FILE the fake's self-made certificate is not trusted: no handshake, no AUTH."""
    with SMTPFake(user="atelier", password="fake-pass",
                  tls=(os.environ["SMTP_FAKE_CERT"], os.environ["SMTP_FAKE_KEY"])) as fake:
        status, log, email = register_as_cgi(stack, {"SMTP_URL": fake.url})
        assert status == "Status: 202 Accepted", (status, log)
        assert fake.messages_to(email) == []
        assert auth_lines(fake) == [], fake.transcript
        assert "mail delivery failed" in log, log


def test_smtp_tls_none_is_the_explicit_opt_out_for_a_local_relay(stack):
    with SMTPFake(user="atelier", password="fake-pass") as fake:
        status, log, email = register_as_cgi(stack, {"SMTP_URL": fake.url, "SMTP_TLS": "none"})
        assert status == "Status: 202 Accepted", (status, log)
        [message] = fake.wait_for(email)
        assert not message.tls and message.auth_user == "atelier"


def test_smtp_tls_required_applies_without_credentials_too(stack):
    with SMTPFake() as fake:
        status, log, email = register_as_cgi(stack, {"SMTP_URL": fake.url, "SMTP_TLS": "required"})
        assert status == "Status: 202 Accepted", (status, log)
        assert fake.messages_to(email) == []
        without = register_as_cgi(stack, {"SMTP_URL": fake.url}, remote="127.0.9.2")
        assert fake.wait_for(without[2]), "without credentials or SMTP_TLS, a plain relay still gets the mail"


def test_a_bad_smtp_tls_value_stops_the_function_at_start(stack):
    status, log, _ = register_as_cgi(stack, {"SMTP_URL": "smtp://127.0.0.1:1", "SMTP_TLS": "maybe"})
    assert "SMTP_TLS must be auto, required or none" in log, (status, log)


def test_doctor_checks_smtp_without_sending_mail(stack):
    """`atelier doctor` connects, requires TLS as a delivery would, authenticates and sends nothing."""
    from test_replicate import doctor

    with SMTPFake(user="atelier", password="fake-pass") as plain:
        found = doctor(stack, SMTP_URL=plain.url)
        assert found["smtp"][0][0] == "fail", found
        assert auth_lines(plain) == [] and plain.messages == []
    with SMTPFake(user="atelier", password="fake-pass",
                  tls=(os.environ["SMTP_FAKE_CERT"], os.environ["SMTP_FAKE_KEY"])) as secure:
        found = doctor(stack, SMTP_URL=secure.url, SMTP_CA_FILE=os.environ["SMTP_CA_FILE"])
        assert found["smtp"][0][0] == "ok", found
        assert auth_lines(secure) and secure.messages == []
