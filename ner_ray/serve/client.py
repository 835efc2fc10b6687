"""Scoring through a running service: `ner-ray evaluate --endpoint URL CORPUS [--split S]` reads the corpus split
here and posts its gold documents to URL/v1/ner/evaluate, so the service need not see this machine's files; the
answer is the scores JSON `ner-ray evaluate` writes, computed by the service with the same ner_ray.inference code.
The service streams its progress as it predicts (a progress bar here).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ner_ray.inference.evaluate import corpus_documents, progress_bar

API_KEY_ENV = "NER_RAY_API_KEY"


def _headers(api_key: str | None) -> dict[str, str]:
    key = api_key or os.environ.get(API_KEY_ENV)
    return {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}


def served_models(url: str, api_key: str | None = None, timeout_s: float = 60) -> list[str]:
    """The model ids the service at `url` serves (its /v1/models)."""
    request = urllib.request.Request(f"{url.rstrip('/')}/v1/models", headers=_headers(api_key))
    return [card["id"] for card in _answer(request, url, timeout_s, json.load)["data"]]


def _answer(request: urllib.request.Request, url: str, timeout_s: float, read: Any) -> Any:
    """`read(response)` of the request; the service's refusal or absence as a ValueError naming it."""
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return read(response)
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")
        try:
            detail = json.loads(detail)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            pass
        raise ValueError(f"{url} refused the request to {request.full_url} (HTTP {error.code}): {detail}") from None
    except urllib.error.URLError as error:
        raise ValueError(f"{url} cannot be reached: {error.reason} (is `ner-ray serve` running there?)") from None


def evaluate_endpoint(url: str, corpus: str, split: str = "test", types: list[str] | None = None, fmt: str | None = None,
                      data_dir: str | Path | None = None, api_key: str | None = None, timeout_s: float = 3600) -> dict[str, Any]:
    """The service's scores of `split` of `corpus` (types: those given, else those the corpus annotates); the API key
    from `api_key` or $NER_RAY_API_KEY. A refusal is a ValueError carrying the service's message."""
    documents, annotated = corpus_documents(corpus, split, True, fmt, data_dir)
    body = {"split": split, "types": list(types) if types is not None else list(annotated), "stream": True,
            "documents": [{"id": d.id, "text": d.text, "spans": [{"start": s.start, "end": s.end, "type": s.type}
                                                                  for s in d.spans]} for d in documents]}
    print(f"scoring {len(documents)} documents of {corpus} {split} at {url} ...", flush=True)
    request = urllib.request.Request(f"{url.rstrip('/')}/v1/ner/evaluate", data=json.dumps(body).encode("utf-8"),
                                     headers=_headers(api_key))
    result = _answer(request, url, timeout_s, lambda response: read_stream(response, url))
    return {**result, "corpus": corpus, "endpoint": url}


def read_stream(response: Any, url: str) -> dict[str, Any]:
    """The scores from /v1/ner/evaluate's NDJSON answer, its progress lines shown as a progress bar (on stderr)."""
    with progress_bar("served evaluation") as progress:
        for line in response:
            event = json.loads(line)
            if "progress" in event:
                progress(event["progress"]["done"], event["progress"]["total"])
            elif "error" in event:
                raise ValueError(f"{url} failed the evaluation: {event['error']['message']}")
            elif "result" in event:
                return event["result"]
    raise ValueError(f"{url} closed the evaluation stream before sending the scores")
