"""A real SMTP server for the sink tests (aiosmtpd), run as a child process.

Usage: smtp_server.py --maildir DIR [--tls none|starttls|implicit --cert PEM --key PEM]
                      [--auth USER:PASS] [--fail-first N] [--reject] [--stall]
Prints "READY <port>" once listening; exits when stdin closes (the test process ended).
Each accepted message is written to DIR/<n>.json, parsed by Python's email package
(headers decoded, one entry per MIME part).
"""
import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import socket
import ssl
import sys
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, maildir, fail_first, reject, stall):
        self.maildir = maildir
        self.stall = stall
        self.fail_left = fail_first
        self.reject = reject
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        if self.stall:
            await asyncio.sleep(3600)
        if self.reject:
            return "554 5.7.1 Message rejected by policy: test relay says no"
        if self.fail_left > 0:
            self.fail_left -= 1
            return "451 4.3.0 Temporary local problem, try again later"
        self.n += 1
        data = envelope.original_content or envelope.content
        msg = email.message_from_bytes(data, policy=email.policy.default)
        parsed = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "auth": bool(getattr(session, "authenticated", False)),
            "headers": {k.lower(): str(v) for k, v in msg.items()},
            "parts": [
                {"type": part.get_content_type(), "text": part.get_content()}
                for part in msg.walk()
                if not part.is_multipart()
            ],
        }
        path = os.path.join(self.maildir, f"{self.n:04}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(parsed, f)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 Ok: queued as test-%d" % self.n


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    # aiosmtpd's deprecation and "AUTH without TLS" notices are noise in test output.
    warnings.filterwarnings("ignore")
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    p = argparse.ArgumentParser()
    p.add_argument("--maildir", required=True)
    p.add_argument("--tls", default="none", choices=["none", "starttls", "implicit"])
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth")
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--reject", action="store_true")
    p.add_argument("--stall", action="store_true", help="never answer the end of DATA")
    a = p.parse_args()

    kwargs = {}
    ctx = None
    if a.tls != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
    if a.tls == "starttls":
        kwargs["tls_context"] = ctx
        kwargs["require_starttls"] = True
    if a.auth:
        user, password = a.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            # handled=False: aiosmtpd answers 535 itself (True would leave the client waiting).
            return AuthResult(success=ok, handled=False)

        kwargs["authenticator"] = authenticator
        kwargs["auth_required"] = True
        # Implicit TLS is TLS too; aiosmtpd only knows about STARTTLS here.
        kwargs["auth_require_tls"] = a.tls == "starttls"

    handler = Handler(a.maildir, a.fail_first, a.reject, a.stall)
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        ssl_context=ctx if a.tls == "implicit" else None,
        **kwargs,
    )
    controller.start()
    print(f"READY {port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
