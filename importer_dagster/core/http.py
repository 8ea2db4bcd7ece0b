"""HTTP for both APIs: the one place that decides what is retried, how, and what is fatal.

Transient trouble (timeouts, dropped connections, 5xx, 429, and the empty-bodied 403 Mailchimp
gives under heavy load) is retried per request by urllib3's `Retry`, so one flaky response never
costs a whole Dagster step. A 200 whose body is not JSON (a truncated page) is requested again
from the same budget of attempts. What survives becomes `RetryableHttpError`, which the assets'
RetryPolicy retries at step level. Everything else in 4xx is `FatalHttpError`: retrying a 401 or
a 404 cannot help, so it fails the partition at once. The README's retry table adds up every
layer, this one included.

Error messages name the API, the account and the request path; they never contain a key.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from importer_dagster.core import metrics
from importer_dagster.core.slots import ConnectionSlots

RETRYABLE_STATUSES = frozenset({429, *range(500, 600)})


class HttpError(Exception):
    retryable: bool = False

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class RetryableHttpError(HttpError):
    retryable = True


class FatalHttpError(HttpError):
    retryable = False


def _is_bodyless(response: Any) -> bool:
    return response.headers.get("Content-Length") == "0"


class _ImporterRetry(Retry):
    """urllib3's Retry, taught that Mailchimp's bodyless 403 means 'slow down', not 'forbidden'."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        return status_code == 403 or super().is_retry(method, status_code, has_retry_after)

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):  # type: ignore[override]
        if response is not None and response.status == 403 and not _is_bodyless(response):
            # A real 403 carries a problem document: hand it back to the caller, unretried.
            raise MaxRetryError(_pool, url, "403 with a body is not retryable")  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0

    def urllib3_retry(self) -> Retry:
        return _ImporterRetry(
            total=self.attempts,
            connect=self.attempts,
            read=self.attempts,
            status=self.attempts,
            other=0,
            redirect=0,
            # Every call the importer makes is safe to repeat: GETs, and POSTs carrying an Idempotency-Key.
            allowed_methods=None,
            status_forcelist=RETRYABLE_STATUSES,
            backoff_factor=self.backoff_s,
            backoff_max=self.backoff_max_s,
            backoff_jitter=self.backoff_s,
            respect_retry_after_header=True,
            raise_on_status=False,
        )


class ApiClient:
    """One pooled, retrying, authenticated session to one API on behalf of one account."""

    def __init__(
        self,
        *,
        base_url: str,
        describe: str,
        api: str,
        account: str = "",
        auth: requests.auth.AuthBase | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
        max_connections: int = 10,
        retry: RetrySettings = RetrySettings(),
        slots: ConnectionSlots | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.describe = describe
        self.api = api
        self.account = account
        """Whom the request-retry metrics are tagged with, unless a request names its own account."""
        self._secrets = tuple(secret for secret in secrets if secret)
        self._retry = retry
        self._slots = slots
        self.session = requests.Session()
        self.session.auth = auth
        self.session.headers.update(headers or {})
        adapter = HTTPAdapter(
            max_retries=retry.urllib3_retry(),
            pool_connections=1,
            pool_maxsize=max_connections,
            pool_block=True,
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        account: str | None = None,
    ) -> Answer:
        """Send one request; its status is classified now, its JSON read when `Answer.json` is called.

        The bytes that arrived are a fraction of the memory their JSON takes once parsed, so a
        caller that fetches ahead (the member scan) holds answers and parses each one as it uses it.
        """
        answer = Answer(self, method, path, params, body, headers, account or self.account)
        answer.send()
        return answer

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        path: str,
    ) -> requests.Response:
        timeout = (self._retry.connect_timeout_s, self._retry.read_timeout_s)
        try:
            with self._slots.hold() if self._slots else nullcontext():
                return self.session.request(
                    method, url, params=params, data=body, headers=headers, timeout=timeout
                )
        except requests.RequestException as error:
            reason = type(error).__name__
            raise RetryableHttpError(
                f"{self.describe}: {method} {path} failed after {self._retry.attempts} retries ({reason})"
            ) from None

    def _count_retries(self, response: requests.Response, account: str) -> int:
        """urllib3 keeps each retried attempt in the response's history: a status or an error class."""
        history = getattr(getattr(response.raw, "retries", None), "history", ())
        for attempt in history:
            cause = f"http_{attempt.status}" if attempt.status else type(attempt.error).__name__
            metrics.count("requests.retried", 1, account, api=self.api, cause=cause)
        return len(history)

    def _classify(self, response: requests.Response, method: str, path: str) -> HttpError:
        status = response.status_code
        detail = _problem_detail(response)
        message = self.redact(f"{self.describe}: {method} {path} answered {status}{detail}")
        if status in RETRYABLE_STATUSES or (status == 403 and not response.content):
            return RetryableHttpError(f"{message} (after {self._retry.attempts} retries)", status)
        return FatalHttpError(message, status)

    def close(self) -> None:
        self.session.close()


@dataclass
class Answer:
    """A successful response whose JSON is read on demand.

    A 200 whose body is not JSON (a truncated page) is sent again while the request has used
    fewer than `attempts` retries in all, counting urllib3's own: the re-read shares the budget
    instead of multiplying it, wherever the JSON is read.
    """

    client: ApiClient
    method: str
    path: str
    params: Mapping[str, Any] | None
    body: bytes | None
    headers: Mapping[str, str] | None
    account: str
    content: bytes = b""
    status: int = 0
    sends: int = 0

    def send(self) -> None:
        client = self.client
        response = client._send(self.method, f"{client.base_url}{self.path}", self.params, self.body, self.headers,
                                self.path)
        self.sends += 1 + client._count_retries(response, self.account)
        if response.status_code >= 300:
            raise client._classify(response, self.method, self.path)
        self.content, self.status = response.content, response.status_code

    def json(self) -> Any:
        retry = self.client._retry
        while True:
            try:
                return orjson.loads(self.content)
            except orjson.JSONDecodeError:
                metrics.count("requests.retried", 1, self.account, api=self.client.api, cause="malformed_json")
                if self.sends > retry.attempts:
                    raise RetryableHttpError(
                        f"{self.client.describe}: {self.method} {self.path} returned malformed JSON ({self.sends} attempts)",
                        self.status,
                    ) from None
                time.sleep(min(retry.backoff_s * 2 ** (self.sends - 1), retry.backoff_max_s))
                self.send()


def _problem_detail(response: requests.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        return ""
    if not isinstance(problem, dict):
        return ""
    text = problem.get("detail") or problem.get("title") or problem.get("error") or ""
    return f": {str(text)[:300]}" if text else ""
