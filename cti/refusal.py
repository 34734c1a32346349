"""A refused operation of the domain (a case's workflow, the knowledge base): ``code`` for programs, the
message for people, and the HTTP status the API answers it with. Pure: the API's error middleware answers
every one in its one error shape, the command line prints its message."""

from __future__ import annotations


class Refusal(Exception):
    def __init__(self, code: str, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
