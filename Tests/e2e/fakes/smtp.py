"""A small SMTP server for the black-box tests, in the standard library only.

It speaks enough real SMTP (RFC 5321, with AUTH PLAIN and LOGIN from RFC 4954) for libcurl's SMTP
client and for Python's smtplib: greeting, EHLO/HELO, AUTH, MAIL FROM, RCPT TO, DATA with dot-unstuffing,
RSET, NOOP, QUIT. Given a certificate (`tls=(cert_file, key_file)`) it offers STARTTLS (RFC 3207) as a
submission server that only takes credentials over TLS does: before the handshake EHLO advertises
STARTTLS and no AUTH, and AUTH, MAIL and the rest answer "530 5.7.0 Must issue a STARTTLS command first";
after "220 Ready to start TLS" and the handshake every state is forgotten (the client must EHLO again) and
STARTTLS is neither advertised nor accepted again (RFC 3207 4.2). Without a certificate it never offers
STARTTLS (454), as a server on a network that strips it looks. Every message it accepts is kept, with its
envelope, so a test can read the mail the service sent:

    fake = SMTPFake(port=2525, user="atelier", password="fake-pass").start()
    ...
    [message] = fake.wait_for("someone@example.test")
    code = extract_code(message)
    fake.stop()

When a user and password are configured, a client must authenticate before MAIL FROM (530 otherwise)
and wrong credentials are refused with 535; without them, no authentication is needed and any is
accepted. `fail_next(n)` makes the next n DATA commands answer 451, as a mail server that is briefly
unable to take mail does.
"""
import base64
import binascii
import email
import email.policy
import re
import socketserver
import ssl
import threading
import time

MAX_LINE = 1_100_000
MAX_MESSAGE_BYTES = 1_000_000
CODE_PATTERN = re.compile(r"\b(\d{6})\b")


class ReceivedMessage:
    """One accepted message: its envelope, its raw bytes, the parsed message, and who sent it."""

    def __init__(self, mail_from, recipients, raw, auth_user, peer, tls=False):
        self.tls = tls
        self.mail_from = mail_from
        self.recipients = list(recipients)
        self.raw = raw
        self.message = email.message_from_bytes(raw, policy=email.policy.default)
        self.auth_user = auth_user
        self.peer = peer
        self.received_at = time.time()

    @property
    def subject(self):
        return str(self.message.get("Subject", ""))

    def header(self, name):
        value = self.message.get(name)
        return None if value is None else str(value)

    @property
    def text(self):
        """The text/plain body (decoded, line ends as \\n), or "" when the message has none."""
        return _part_text(self.message, "plain")

    @property
    def html(self):
        """The text/html body (decoded, line ends as \\n), or "" when the message has none."""
        return _part_text(self.message, "html")

    def __repr__(self):
        return f"<ReceivedMessage from={self.mail_from!r} to={self.recipients!r} subject={self.subject!r}>"


def _part_text(message, subtype):
    if message.is_multipart():
        part = message.get_body(preferencelist=(subtype,))
    else:
        part = message if message.get_content_type() == f"text/{subtype}" else None
    if part is None:
        return ""
    try:
        text = part.get_content()
    except (LookupError, ValueError):
        text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    return text.replace("\r\n", "\n")


def _as_parsed(message):
    return message.message if isinstance(message, ReceivedMessage) else message


def find_codes(message):
    """Every 6-digit number in the message's subject and text bodies (plain and HTML)."""
    parsed = _as_parsed(message)
    texts = [str(parsed.get("Subject", "")), _part_text(parsed, "plain"), _part_text(parsed, "html")]
    found = []
    for text in texts:
        for code in CODE_PATTERN.findall(text):
            if code not in found:
                found.append(code)
    return found


def extract_code(message):
    """The 6-digit code in the text/plain part of a message (a ReceivedMessage or an email message).

    Fails the test, naming the message, when the plain-text part holds no such code.
    """
    parsed = _as_parsed(message)
    text = _part_text(parsed, "plain")
    match = CODE_PATTERN.search(text)
    if match is None:
        raise AssertionError(f"no 6-digit code in the text/plain part of {message!r}: {text[:500]!r}")
    return match.group(1)


def _address(argument):
    """The address in a MAIL FROM / RCPT TO argument: `<a@b> SIZE=10` gives `a@b`, `<>` gives ``."""
    argument = argument.strip()
    if argument.startswith("<"):
        end = argument.find(">")
        if end < 0:
            return None
        return argument[1:end]
    address = argument.split(" ", 1)[0]
    return address or None


def _b64decode(text):
    try:
        return base64.b64decode(text.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


class _Handler(socketserver.StreamRequestHandler):
    """One SMTP connection."""

    timeout = 60

    def setup(self):
        super().setup()
        self.fake = self.server.fake
        self.auth_user = None
        self.greeted = False
        self.tls = False
        self.reset()

    def needs_tls(self):
        """True (after answering 530) when this server requires STARTTLS and it has not happened yet."""
        if self.fake.tls_context is not None and not self.tls:
            self.reply("530 5.7.0 Must issue a STARTTLS command first")
            return True
        return False

    def reset(self):
        self.mail_from = None
        self.recipients = []

    def reply(self, line):
        self.wfile.write(line.encode("utf-8") + b"\r\n")
        self.wfile.flush()

    def readline(self):
        line = self.rfile.readline(MAX_LINE)
        if not line:
            return None
        return line.rstrip(b"\r\n")

    def handle(self):
        self.peer = "%s:%s" % self.client_address[:2]
        try:
            self.reply("220 fake ESMTP ready")
            self.serve()
        except OSError:
            pass  # the client went away or stayed silent past the timeout

    def serve(self):
        while True:
            raw = self.readline()
            if raw is None:
                return
            line = raw.decode("utf-8", "replace")
            verb, _, argument = line.partition(" ")
            verb = verb.upper()
            self.fake._log(self.peer, line if verb != "AUTH" else "AUTH " + argument.split(" ", 1)[0])
            handler = getattr(self, "smtp_" + verb, None)
            if handler is None:
                self.reply("502 5.5.2 command not recognised")
                continue
            if verb in ("AUTH", "MAIL", "RCPT", "DATA") and self.needs_tls():
                continue
            if handler(argument.strip()) is False:
                return

    def smtp_EHLO(self, argument):
        if not argument:
            return self.reply("501 5.5.4 EHLO needs a domain")
        self.greeted = True
        self.reset()
        self.reply("250-fake greets " + argument)
        self.reply("250-8BITMIME")
        self.reply("250-PIPELINING")
        if self.fake.tls_context is not None and not self.tls:
            self.reply("250-STARTTLS")
        else:
            self.reply("250-AUTH PLAIN LOGIN")
        self.reply(f"250 SIZE {MAX_MESSAGE_BYTES}")

    def smtp_HELO(self, argument):
        if not argument:
            return self.reply("501 5.5.4 HELO needs a domain")
        self.greeted = True
        self.reset()
        self.reply("250 fake")

    def smtp_AUTH(self, argument):
        if self.auth_user is not None:
            return self.reply("503 5.5.1 already authenticated")
        mechanism, _, initial = argument.partition(" ")
        mechanism = mechanism.upper()
        if mechanism == "PLAIN":
            if not initial:
                self.reply("334 ")
                initial = (self.readline() or b"").decode("utf-8", "replace")
            if initial == "*":
                return self.reply("501 5.7.0 authentication cancelled")
            decoded = _b64decode(initial)
            if decoded is None or decoded.count("\0") != 2:
                return self.reply("501 5.5.2 cannot decode the PLAIN response")
            _, user, password = decoded.split("\0")
        elif mechanism == "LOGIN":
            if initial:
                user = _b64decode(initial)
            else:
                self.reply("334 VXNlcm5hbWU6")
                answer = (self.readline() or b"").decode("utf-8", "replace")
                if answer == "*":
                    return self.reply("501 5.7.0 authentication cancelled")
                user = _b64decode(answer)
            if user is None:
                return self.reply("501 5.5.2 cannot decode the user name")
            self.reply("334 UGFzc3dvcmQ6")
            answer = (self.readline() or b"").decode("utf-8", "replace")
            if answer == "*":
                return self.reply("501 5.7.0 authentication cancelled")
            password = _b64decode(answer)
            if password is None:
                return self.reply("501 5.5.2 cannot decode the password")
        else:
            return self.reply("504 5.5.4 unrecognised authentication mechanism")
        if self.fake.user is not None and (user != self.fake.user or password != self.fake.password):
            self.fake._count_auth_failure()
            return self.reply("535 5.7.8 authentication credentials invalid")
        self.auth_user = user
        self.reply("235 2.7.0 authentication succeeded")

    def smtp_MAIL(self, argument):
        if not argument.upper().startswith("FROM:"):
            return self.reply("501 5.5.4 syntax: MAIL FROM:<address>")
        if self.fake.user is not None and self.auth_user is None:
            return self.reply("530 5.7.0 authentication required")
        if self.mail_from is not None:
            return self.reply("503 5.5.1 nested MAIL command")
        rest = argument[5:].strip()
        address = _address(rest)
        if address is None:
            return self.reply("501 5.1.7 bad sender address syntax")
        size = re.search(r"\bSIZE=(\d+)", rest, re.IGNORECASE)
        if size and int(size.group(1)) > MAX_MESSAGE_BYTES:
            return self.reply("552 5.3.4 message size exceeds the fixed limit")
        self.mail_from = address
        self.recipients = []
        self.reply("250 2.1.0 sender ok")

    def smtp_RCPT(self, argument):
        if not argument.upper().startswith("TO:"):
            return self.reply("501 5.5.4 syntax: RCPT TO:<address>")
        if self.mail_from is None:
            return self.reply("503 5.5.1 need MAIL before RCPT")
        address = _address(argument[3:])
        if not address or "@" not in address:
            return self.reply("501 5.1.3 bad recipient address syntax")
        self.recipients.append(address)
        self.reply("250 2.1.5 recipient ok")

    def smtp_DATA(self, argument):
        if argument:
            return self.reply("501 5.5.4 DATA takes no argument")
        if self.mail_from is None:
            return self.reply("503 5.5.1 need MAIL command")
        if not self.recipients:
            return self.reply("503 5.5.1 need RCPT command")
        if self.fake._take_failure():
            self.reset()
            return self.reply("451 4.3.0 try later")
        self.fake._wait_at_gate()
        self.reply("354 end data with <CR><LF>.<CR><LF>")
        lines = []
        size = 0
        while True:
            line = self.rfile.readline(MAX_LINE)
            if not line:
                return False  # the client went away mid-message
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]  # dot-unstuffing (RFC 5321 4.5.2)
            size += len(line)
            lines.append(line)
        if size > MAX_MESSAGE_BYTES:
            self.reset()
            return self.reply("552 5.3.4 message size exceeds the fixed limit")
        raw = b"".join(lines)
        self.fake._store(ReceivedMessage(self.mail_from, self.recipients, raw, self.auth_user, self.peer, self.tls))
        self.reset()
        self.reply("250 2.0.0 message accepted")

    def smtp_RSET(self, argument):
        self.reset()
        self.reply("250 2.0.0 reset")

    def smtp_NOOP(self, argument):
        self.reply("250 2.0.0 ok")

    def smtp_VRFY(self, argument):
        self.reply("252 2.1.5 cannot verify, will accept")

    def smtp_HELP(self, argument):
        self.reply("214 2.0.0 commands: EHLO HELO AUTH MAIL RCPT DATA RSET NOOP QUIT")

    def smtp_STARTTLS(self, argument):
        if self.fake.tls_context is None:
            return self.reply("454 4.7.0 TLS not available")
        if self.tls:
            return self.reply("503 5.5.1 TLS already active")
        if argument:
            return self.reply("501 5.5.4 STARTTLS takes no argument")
        if not self.greeted:
            return self.reply("503 5.5.1 EHLO first")
        self.reply("220 2.0.0 Ready to start TLS")
        try:
            wrapped = self.fake.tls_context.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError) as error:
            self.fake._count_tls_failure(error)
            return False  # the handshake failed: the client did not trust us, or spoke no TLS
        self.connection = self.request = wrapped
        self.rfile = wrapped.makefile("rb")
        self.wfile = wrapped.makefile("wb")
        # RFC 3207 4.2: everything learnt before the handshake is discarded.
        self.tls = True
        self.greeted = False
        self.auth_user = None
        self.reset()
        self.fake._log(self.peer, "(TLS established)")

    def smtp_QUIT(self, argument):
        self.reply("221 2.0.0 bye")
        return False


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address, fake):
        self.fake = fake
        super().__init__(address, _Handler)


class SMTPFake:
    """An SMTP server on host:port (port 0: any free port, read back from `.port`) keeping what it receives."""

    def __init__(self, host="127.0.0.1", port=0, user=None, password=None, tls=None):
        self.host = host
        self.requested_port = port
        self.user = user
        self.password = password
        self.tls_context = None
        self.tls_failures = []
        if tls is not None:
            cert_file, key_file = tls
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.minimum_version = ssl.TLSVersion.TLSv1_2
            self.tls_context.load_cert_chain(cert_file, key_file)
        self._messages = []
        self._condition = threading.Condition()
        self._failures_left = 0
        self._gate = threading.Event()
        self._gate.set()
        self._held = 0
        self.auth_failures = 0
        self.transcript = []
        self._server = None
        self._thread = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self):
        if self._server is not None:
            raise RuntimeError("the SMTP fake is already running")
        self._server = _Server((self.host, self.requested_port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"smtp-fake-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        if self._server is None:
            return self.requested_port
        return self._server.server_address[1]

    @property
    def url(self):
        """An smtp:// URL for this server, with its credentials when it has some."""
        credentials = f"{self.user}:{self.password}@" if self.user is not None else ""
        return f"smtp://{credentials}{self.host}:{self.port}"

    # ---- holding mail ------------------------------------------------------------------------

    def hold(self):
        """From now on every message waits before DATA (the exchange stays open) until `release`."""
        self._gate.clear()

    def release(self):
        self._gate.set()

    def held(self):
        """How many exchanges are waiting at the gate now."""
        with self._condition:
            return self._held

    def _wait_at_gate(self):
        with self._condition:
            self._held += 1
        try:
            self._gate.wait(60)
        finally:
            with self._condition:
                self._held -= 1

    # ---- what was received -------------------------------------------------------------------

    @property
    def messages(self):
        """A snapshot of every message accepted so far, oldest first."""
        with self._condition:
            return list(self._messages)

    def messages_to(self, address):
        """The messages whose envelope recipients include `address` (compared case-insensitively)."""
        wanted = address.strip().lower()
        with self._condition:
            return [m for m in self._messages if wanted in (r.lower() for r in m.recipients)]

    def wait_for(self, address, count=1, timeout=10):
        """Waits until at least `count` messages to `address` arrived and returns them all, oldest first.

        Fails the test (AssertionError) after `timeout` seconds, saying what did arrive.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                found = self.messages_to(address)
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    others = [(m.recipients, m.subject) for m in self._messages[-5:]]
                    raise AssertionError(
                        f"expected {count} message(s) to {address} within {timeout}s, got {len(found)}; "
                        f"latest messages received: {others}; SMTP failures to deliver queued: "
                        f"{self._failures_left}, authentication failures: {self.auth_failures}")
                self._condition.wait(left)

    def clear(self):
        with self._condition:
            self._messages.clear()
            self.transcript.clear()

    def fail_next(self, n):
        """The next n DATA commands answer `451 try later` (0 cancels failures still pending)."""
        with self._condition:
            self._failures_left = max(0, int(n))

    @property
    def failures_left(self):
        with self._condition:
            return self._failures_left

    # ---- called by the connection handlers ---------------------------------------------------

    def _store(self, message):
        with self._condition:
            self._messages.append(message)
            self._condition.notify_all()

    def _take_failure(self):
        with self._condition:
            if self._failures_left > 0:
                self._failures_left -= 1
                return True
            return False

    def _count_tls_failure(self, error):
        with self._condition:
            self.tls_failures.append(str(error))

    def _count_auth_failure(self):
        with self._condition:
            self.auth_failures += 1

    def _log(self, peer, line):
        with self._condition:
            self.transcript.append((peer, line))
            if len(self.transcript) > 10_000:
                del self.transcript[:5_000]
