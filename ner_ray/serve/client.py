"""Scoring through a running service: `ner-ray evaluate --endpoint URL CORPUS [--split S]` reads the corpus split
here and posts its gold documents to URL/v1/ner/evaluate, so the service need not see this machine's files; the
answer is the scores JSON `ner-ray evaluate` writes, computed by the service with the same ner_ray.inference code.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ner_ray.inference.evaluate import corpus_documents

API_KEY_ENV = "NER_RAY_API_KEY"


def evaluate_endpoint(url: str, corpus: str, split: str = "test", types: list[str] | None = None, fmt: str | None = None,
                      data_dir: str | Path | None = None, api_key: str | None = None, timeout_s: float = 3600) -> dict[str, Any]:
    """The service's scores of `split` of `corpus` (types: those given, else those the corpus annotates); the API key
    from `api_key` or $NER_RAY_API_KEY. A refusal is a ValueError carrying the service's message."""
    documents, annotated = corpus_documents(corpus, split, True, fmt, data_dir)
    body = {"split": split, "types": list(types) if types is not None else list(annotated),
            "documents": [{"id": d.id, "text": d.text, "spans": [{"start": s.start, "end": s.end, "type": s.type}
                                                                  for s in d.spans]} for d in documents]}
    headers = {"Content-Type": "application/json"}
    key = api_key or os.environ.get(API_KEY_ENV)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    print(f"scoring {len(documents)} documents of {corpus} {split} at {url} ...", flush=True)
    request = urllib.request.Request(f"{url.rstrip('/')}/v1/ner/evaluate", data=json.dumps(body).encode("utf-8"),
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            result = json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")
        try:
            detail = json.loads(detail)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            pass
        raise ValueError(f"{url} refused the evaluation (HTTP {error.code}): {detail}") from None
    except urllib.error.URLError as error:
        raise ValueError(f"{url} cannot be reached: {error.reason} (is `ner-ray serve` running there?)") from None
    return {**result, "corpus": corpus, "endpoint": url}
