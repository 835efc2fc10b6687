"""Credentials never leave ner_ray in the clear: whatever it prints or writes (study files, results.json,
reports, MLflow params and tags, model metadata, error messages) passes through `redact` or `redact_tree`.

Recognised: the password of a URI (`http://user:pw@host` → `http://user:***@host`), the value of a query
parameter or `key=value` whose name says secret (token, password, secret, api_key, access_key, ...), and
the shapes of common tokens (Hugging Face `hf_...`, GitHub `ghp_...`/`github_pat_...`, OpenAI-style
`sk-...`, AWS access key ids). Pure string functions; `split_credentials` lets the MLflow client take a
URI's user and password from the environment instead of from the URI itself.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_URI_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@")
_NAMED_VALUE = re.compile(  # hf_token=..., MLFLOW_TRACKING_PASSWORD=..., ?api_key=...; not max_tokens=, tokenizer:
    r"(?P<name>\b(?:[A-Za-z0-9]+[_-])*(?:token|password|passwd|secret|secret[_-]?key|api[_-]?key|access[_-]?key"
    r"|private[_-]?key)(?![A-Za-z0-9]))(?P<sep>\s*[=:]\s*)(?P<value>[^\s&;,'\"]+)", re.IGNORECASE)
_TOKENS = re.compile(r"\b(?:hf_[A-Za-z0-9]{20,}|ghp_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|sk-[A-Za-z0-9_-]{20,}"
                     r"|AKIA[0-9A-Z]{16})\b")


def redact(text: str) -> str:
    """`text` with every credential it holds replaced by ***."""
    text = _URI_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _NAMED_VALUE.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)
    return _TOKENS.sub(MASK, text)


def redact_tree(value: Any) -> Any:
    """A copy of a JSON-like tree (dicts, lists, strings) with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_tree(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_tree(item) for item in value]
    return value


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """(the URI without user and password, user, password); a URI without them comes back unchanged."""
    parts = urlsplit(uri)
    if not parts.username and not parts.password:
        return uri, None, None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), parts.username, parts.password


def credentials_to_env(uri: str) -> str:
    """A tracking URI without its user and password, which move to MLFLOW_TRACKING_USERNAME / _PASSWORD (the MLflow
    client sends them as basic auth), so that the URI ner_ray keeps, prints and writes holds no credential."""
    import os

    clean, user, password = split_credentials(uri)
    if user is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = user
    if password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    return clean
