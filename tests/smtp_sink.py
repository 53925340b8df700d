"""A tiny SMTP server that keeps what it is sent, and a test e-mail backend that can hang on purpose.

``SMTPSink`` speaks just enough SMTP for smtplib and Django's SMTP backend (EHLO/HELO, MAIL, RCPT,
DATA, RSET, NOOP, QUIT), one thread per session, and records every accepted message with its
recipients, the session it came in and when. Standard library only.

``SinkProcess`` runs a sink in a child process (for the benchmark: the sender and the sink do not
share one interpreter lock) and answers ``stats()``.

``PausingEmailBackend`` is Django's SMTP backend for the worker processes of the exactly-once tests.
After ``GATEHOUSE_TEST_PAUSE_AFTER_EMAILS`` messages in its process, it sleeps before handing over the
next one: the worker hangs between two messages of a batch, where the test kills it.
``GATEHOUSE_TEST_SEND_DELAY_SECONDS`` slows every message down so that two workers really overlap.
"""

from __future__ import annotations

import multiprocessing
import os
import socketserver
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser

from django.conf import settings
from django.core.mail.backends import smtp

WORKER_HEADER = "X-Gatehouse-Test-Worker"


@dataclass(frozen=True)
class ReceivedMessage:
    session: int
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes
    received_at: float

    @property
    def headers(self):
        return BytesHeaderParser().parsebytes(self.data)


@dataclass
class _Store:
    messages: list[ReceivedMessage] = field(default_factory=list)
    sessions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _SMTPHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        store: _Store = self.server.store  # type: ignore[attr-defined]
        with store.lock:
            store.sessions += 1
            session = store.sessions
        mail_from, recipients = "", []
        self._reply("220 sink ESMTP")
        while line := self.rfile.readline():
            command, _, argument = line.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
            verb = command.upper()
            if verb == "EHLO":
                self._reply("250-sink", "250-8BITMIME", "250 SMTPUTF8")
            elif verb in ("HELO", "NOOP"):
                self._reply("250 OK")
            elif verb == "MAIL":
                mail_from, recipients = _address(argument), []
                self._reply("250 OK")
            elif verb == "RCPT":
                recipients.append(_address(argument))
                self._reply("250 OK")
            elif verb == "DATA":
                self._reply("354 End data with <CR><LF>.<CR><LF>")
                data = self._read_data()
                with store.lock:
                    store.messages.append(
                        ReceivedMessage(session, mail_from, tuple(recipients), data, time.time())
                    )
                mail_from, recipients = "", []
                self._reply("250 OK queued")
            elif verb == "RSET":
                mail_from, recipients = "", []
                self._reply("250 OK")
            elif verb == "QUIT":
                self._reply("221 Bye")
                return
            else:
                self._reply("502 Command not implemented")

    def _read_data(self) -> bytes:
        lines = []
        while (line := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)
        return b"".join(lines)

    def _reply(self, *lines: str) -> None:
        self.wfile.write("".join(f"{line}\r\n" for line in lines).encode())


def _address(argument: str) -> str:
    # "FROM:<a@b> SIZE=12" -> "a@b"
    value = argument.partition(":")[2].strip()
    return value.partition(">")[0].lstrip("<")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class SMTPSink:
    """``with SMTPSink() as sink:`` listens on 127.0.0.1:``sink.port`` in a background thread."""

    def __init__(self, port: int = 0):
        self._store = _Store()
        self._server = _Server(("127.0.0.1", port), _SMTPHandler)
        self._server.store = self._store  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SMTPSink:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._store.lock:
            return list(self._store.messages)

    @property
    def sessions(self) -> int:
        with self._store.lock:
            return self._store.sessions

    def count_by_recipient(self) -> Counter:
        return Counter(address for message in self.messages for address in message.recipients)

    def stats(self) -> dict:
        messages = self.messages
        counts = self.count_by_recipient()
        return {
            "messages": len(messages),
            "recipients": len(counts),
            "duplicates": sum(count - 1 for count in counts.values() if count > 1),
            "sessions": self.sessions,
            "first_at": messages[0].received_at if messages else None,
            "last_at": max((message.received_at for message in messages), default=None),
        }


class SinkProcess:
    """An SMTPSink in a child process; ``stats()`` asks it how much it received."""

    def __init__(self):
        self._pipe, child_pipe = multiprocessing.Pipe()
        self._process = multiprocessing.Process(target=_serve_in_child, args=(child_pipe,), daemon=True)

    def __enter__(self) -> SinkProcess:
        self._process.start()
        self.port = self._pipe.recv()
        return self

    def stats(self) -> dict:
        self._pipe.send("stats")
        return self._pipe.recv()

    def __exit__(self, *exc_info) -> None:
        self._pipe.send("stop")
        self._process.join(timeout=10)


def _serve_in_child(pipe) -> None:
    with SMTPSink() as sink:
        pipe.send(sink.port)
        while (command := pipe.recv()) != "stop":
            if command == "stats":
                pipe.send(sink.stats())


class PausingEmailBackend(smtp.EmailBackend):
    """Django's SMTP backend, with the test-only brakes described at the top of this module."""

    handed_over = 0  # messages handed to the server by this process

    def send_messages(self, email_messages):
        pause_after = getattr(settings, "GATEHOUSE_TEST_PAUSE_AFTER_EMAILS", 0)
        if pause_after and PausingEmailBackend.handed_over >= pause_after:
            time.sleep(3600)
        delay = getattr(settings, "GATEHOUSE_TEST_SEND_DELAY_SECONDS", 0)
        if delay:
            time.sleep(delay)
        for message in email_messages:
            message.extra_headers[WORKER_HEADER] = str(os.getpid())
        sent = super().send_messages(email_messages)
        PausingEmailBackend.handed_over += sent or 0
        return sent
