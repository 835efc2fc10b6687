"""What the service reads and answers: OpenAI's completions and chat-completions bodies (the fields a client may
send; unknown ones ignored, as OpenAI-compatible servers do), /v1/ner and /v1/ner/evaluate bodies, the error body,
and the checks of a request against `serve.*` limits. Every problem is an `ApiError`: a 4xx naming the field.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ner_ray.config import ServeConfig


class ApiError(Exception):
    """A request the service refuses: `status` (4xx), a message naming what is wrong and what is valid."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind

    def body(self) -> dict[str, Any]:
        """OpenAI's error object, which its clients raise as APIStatusError with this message."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.status}}


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class Sampling(Request):
    """The generation fields completions and chat share."""

    model: str | None = Field(None, description="a served model id (GET /v1/models); null: the only one")
    max_tokens: int | None = Field(None, ge=1, description="new tokens at most; null: 16 (completions, as OpenAI) or the limit (chat)")
    temperature: float = Field(1.0, ge=0, le=2, description="0: greedy; above: sampling")
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = Field(None, description="text ends before the first of these (up to 4)")
    n: int = Field(1, description="completions per prompt: 1 only")
    seed: int | None = Field(None, description="sampling seed (temperature > 0)")
    stream: bool = Field(False, description="false only: answers come whole")

    @field_validator("temperature", "top_p", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: str | list[str] | None) -> list[str] | None:
        stops = [stop] if isinstance(stop, str) else stop
        if stops is not None and (len(stops) > 4 or any(not s for s in stops)):
            raise ValueError("stop takes up to 4 non-empty strings")
        return stops

    @model_validator(mode="after")
    def _supported(self) -> Sampling:
        if self.n != 1:
            raise ValueError(f"n={self.n}: this service writes one completion per prompt (n=1)")
        if self.stream:
            raise ValueError("stream=true is not supported: send stream=false (the default)")
        return self


class CompletionRequest(Sampling):
    prompt: str | list[str] = Field(description="a prompt or a list of prompts")

    @field_validator("prompt")
    @classmethod
    def _some(cls, prompt: str | list[str]) -> str | list[str]:
        if isinstance(prompt, list) and not prompt:
            raise ValueError("an empty list of prompts: give one prompt or more")
        return prompt

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class ChatMessage(Request):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, description="OpenAI's newer name of max_tokens")


class NerRequest(Request):
    model: str | None = None
    texts: list[str] = Field(min_length=1, description="texts to tag; each gets its spans in text offsets")


class SpanIn(Request):
    start: int = Field(ge=0)
    end: int = Field(ge=1)
    type: str = Field(min_length=1)


class DocumentIn(Request):
    id: str = Field(min_length=1)
    text: str
    spans: list[SpanIn] = Field(default_factory=list)


class EvaluateRequest(Request):
    model: str | None = None
    corpus: str | None = Field(None, description="a named corpus (bc5cdr, ncbi_disease, demo) or a path the server reads")
    split: str = Field("test", min_length=1)
    documents: list[DocumentIn] | None = Field(None, description="gold documents instead of a corpus")
    types: list[str] | None = Field(None, description="entity types scored; null: those the corpus annotates")
    stream: bool = Field(False, description="answer NDJSON: progress lines as documents are predicted, then the scores")

    @model_validator(mode="after")
    def _one_source(self) -> EvaluateRequest:
        if (self.corpus is None) == (self.documents is None):
            raise ValueError("give either corpus (with split) or documents, not both and not neither")
        return self


def parse_body(raw: bytes, schema: type[Request], limits: ServeConfig) -> Any:
    """The request body read as `schema`: 413 past serve.max_body_bytes, 400 for a body that is no UTF-8 JSON
    object, 400 naming the first invalid field."""
    if len(raw) > limits.max_body_bytes:
        raise ApiError(413, f"request body of {len(raw)} bytes is over the limit serve.max_body_bytes={limits.max_body_bytes}")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ApiError(400, f"request body is not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise ApiError(400, f"request body is not JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    if not isinstance(payload, dict):
        raise ApiError(400, f"request body must be a JSON object, not {type(payload).__name__}")
    try:
        return schema.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or None
        raise ApiError(400, f"{where or 'body'}: {first['msg']}", param=where) from None


def check_items(items: list[str], field: str, limits: ServeConfig) -> None:
    """400 when a request holds more prompts/texts than serve.max_items or one longer than serve.max_prompt_chars."""
    if len(items) > limits.max_items:
        raise ApiError(400, f"{field} holds {len(items)} items; the limit serve.max_items is {limits.max_items}", field)
    for i, item in enumerate(items):
        if len(item) > limits.max_prompt_chars:
            raise ApiError(400, f"{field}[{i}] has {len(item)} characters; the limit serve.max_prompt_chars is "
                           f"{limits.max_prompt_chars}", field)


def check_max_tokens(requested: int | None, limits: ServeConfig, default: int) -> int:
    tokens = default if requested is None else requested
    if tokens > limits.max_tokens:
        raise ApiError(400, f"max_tokens {tokens} is over the limit serve.max_tokens={limits.max_tokens}", "max_tokens")
    return tokens
