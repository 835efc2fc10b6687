"""The Ray Serve application: one deployment with our own FastAPI ingress in front of an engine (serve/engines.py).

Routes: GET /health, GET /v1/models, GET /v1/stats, POST /v1/completions and /v1/chat/completions (OpenAI's
schemas; a causal-LM model), POST /v1/ner (texts → spans, every family), POST /v1/ner/evaluate (a corpus split or
gold documents → `ner-ray evaluate`'s scores JSON). Completion prompts from concurrent requests are generated
together: the vllm engine batches them itself (continuous batching: each prompt goes to it as it arrives); for the
hf engine Serve's batches fill its calls (`@serve.batch`, serve.max_batch_size / serve.batch_wait_timeout_s; batches
waiting for the engine are merged into its next call). `--top-k` serves several LoRA adapters on one base model (serve/adapters.py), a
request's `model` picking one. With an API key every route but /health needs `Authorization: Bearer <key>`; the
replica holds only the key's SHA-256.
"""

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve

from ner_ray.artifacts import MODEL_DIR, MODEL_META, RESULTS, best_model_id, run_dir
from ner_ray.config import ServeConfig
from ner_ray.data.document import Document, Span
from ner_ray.inference.evaluate import corpus_documents
from ner_ray.serve.adapters import resolve_model, top_trials
from ner_ray.serve.engines import Completion, Generation, Prompt, resolve_engine
from ner_ray.serve.protocol import (
    ApiError,
    ChatRequest,
    CompletionRequest,
    EvaluateRequest,
    NerRequest,
    check_items,
    check_max_tokens,
    parse_body,
)

COMPLETION_DEFAULT_TOKENS = 16  # OpenAI's default max_tokens for /v1/completions
MAX_WAITING_BATCHES = 4096  # Serve batches let through to the merge below (requests are bounded by max_ongoing_requests)

api = FastAPI(title="ner_ray", description="biomedical NER models behind OpenAI-compatible routes")


@api.exception_handler(ApiError)
async def _refused(_: Request, error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def served_model(path: str | Path) -> tuple[Path, str]:
    """(the model folder, its served id) of a saved model folder, or of a study folder (its best trial's model)."""
    path = Path(path)
    if (path / MODEL_META).is_file():
        return path, path.parent.name if path.name == MODEL_DIR else path.name
    if (path / RESULTS).is_file():
        results = json.loads((path / RESULTS).read_text(encoding="utf-8"))
        best = results.get("best") or {}
        if not best:
            raise FileNotFoundError(f"{path / RESULTS}: no trial completed with {results.get('metric')}, so no model to serve")
        exported = run_dir(path, best["experiment"]) / MODEL_DIR
        model = exported if (exported / MODEL_META).is_file() else Path(best.get("model_path") or exported)
        if not (model / MODEL_META).is_file():
            raise FileNotFoundError(f"{path}: the best trial's model ({model}) is not on disk")
        return model, best_model_id(results, path)
    raise FileNotFoundError(f"{path} is neither a saved ner_ray model ({MODEL_META}) nor a study folder ({RESULTS})")


def gold_document(document: Any, index: int) -> Document:
    """A request's gold document; a span outside its text is a 400 naming it."""
    for j, span in enumerate(document.spans):
        if not span.start < span.end <= len(document.text):
            raise ApiError(400, f"documents.{index}.spans.{j}: [{span.start}, {span.end}) is not inside the text "
                           f"({len(document.text)} characters)", f"documents.{index}.spans.{j}")
    return Document(document.id, document.text, [Span(s.start, s.end, s.type) for s in document.spans])


def stopped(completion: Completion, stops: list[str] | None) -> tuple[str, str]:
    """(the text cut before the first stop string, the finish reason)."""
    cuts = [completion.text.find(s) for s in stops or () if s in completion.text]
    return (completion.text[: min(cuts)], "stop") if cuts else (completion.text, completion.finish_reason)


def usage(done: list[Completion]) -> dict[str, int]:
    prompt, completion = sum(c.prompt_tokens for c in done), sum(c.completion_tokens for c in done)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


# Serve ships the class to its replicas by value: every helper it calls is defined above it.
@serve.deployment(name="ner_ray")
@serve.ingress(api)
class NerService:
    """One engine serving one model; the routes below."""

    def __init__(self, models: dict[str, str], settings: ServeConfig, key_sha256: str | None = None):
        """`models`: {model id: model folder}, one model, or LoRA adapters on one base model (the first, the best)."""
        import os

        import torch

        from ner_ray.registry import ENGINES

        # every engine call runs on this one thread (OpenMP thread counts are per calling thread; Ray gives an actor one)
        threads = settings.threads or os.cpu_count() or 1
        self._executor = ThreadPoolExecutor(1, "engine", initializer=torch.set_num_threads, initargs=(threads,))
        model_dir, adapters = next(iter(models.values())), models if len(models) > 1 else None
        engine = ENGINES.get(resolve_engine(settings.engine, model_dir, len(models)))
        self.engine = self._executor.submit(engine, model_dir, adapters).result()
        self.model_ids, self.settings, self.key_sha256 = list(models), settings, key_sha256
        self.created = int(time.time())
        self._generate_batch.set_max_batch_size(settings.max_batch_size)
        self._waiting: deque[tuple[list[tuple[Prompt, Generation]], asyncio.Future]] = deque()
        self._merging: asyncio.Future | None = None
        self._generate_batch.set_batch_wait_timeout_s(settings.batch_wait_timeout_s)

    def __del__(self) -> None:
        """On the replica's shutdown: an engine with processes of its own (vllm's engine core) stops them."""
        close = getattr(getattr(self, "engine", None), "close", None)
        if close is not None:
            close()

    async def _on_engine(self, call: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)

    # ------------------------------------------------------------------------------------------ checks
    def _authorize(self, request: Request) -> None:
        if self.key_sha256 is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key_digest(token.strip()), self.key_sha256):
            raise ApiError(401, "missing or wrong API key: send Authorization: Bearer <key>", kind="authentication_error")

    async def _body(self, request: Request, schema: type) -> Any:
        self._authorize(request)
        # the whole body is read (a client still sending when refused sees a reset, not the 413) but not kept past the limit
        kept, size = bytearray(), 0
        async for chunk in request.stream():
            size += len(chunk)
            if size <= self.settings.max_body_bytes:
                kept += chunk
        if size > self.settings.max_body_bytes:
            raise ApiError(413, f"request body of {size} bytes is over the limit serve.max_body_bytes={self.settings.max_body_bytes}")
        return parse_body(bytes(kept), schema, self.settings)

    def _model(self, requested: str | None) -> str:
        """The served model id a request names (by id or bare adapter name; none: the best); 404 for another."""
        model = resolve_model(requested, self.model_ids)
        if model is None:
            raise ApiError(404, f"unknown model {requested!r}; this service serves {', '.join(map(repr, self.model_ids))} "
                           "(GET /v1/models)", "model", "not_found_error")
        return model

    def _generating(self) -> None:
        if not self.engine.generates_text:
            raise ApiError(400, f"model {self.model_ids[0]!r} (family {self.engine.family.name}) tags tokens and writes no "
                           "text: use POST /v1/ner", "model")

    def _fits(self, prompts: list[Prompt], settings: Generation, field: str) -> None:
        """400 for a prompt with no tokens, or one whose tokens and max_tokens overrun the model's context."""
        for i, prompt in enumerate(prompts):
            if not prompt.ids:
                raise ApiError(400, f"{field} {i} is empty after tokenisation: give it some text", field)
            context = self.engine.context
            if context is not None and len(prompt.ids) + settings.max_tokens > context:
                raise ApiError(400, f"{field} {i} has {len(prompt.ids)} tokens; with max_tokens {settings.max_tokens} "
                               f"that is over the model's context of {context} tokens", field)

    # ------------------------------------------------------------------------------------------ routes
    @api.get("/health")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/v1/models")
    async def models(self, request: Request) -> dict[str, Any]:
        self._authorize(request)
        return {"object": "list", "data": [
            {"id": model, "object": "model", "created": self.created, "owned_by": "ner_ray", "family": self.engine.family.name,
             "engine": self.engine.name, "generates_text": self.engine.generates_text} for model in self.model_ids]}

    @api.get("/v1/stats")
    async def stats(self, request: Request) -> dict[str, Any]:
        """How concurrent prompts were batched: by Serve (hf: engine calls so far, fewer than the prompts when batched)
        or by the engine (vllm: its requests, one per prompt, and the most it ran at once)."""
        self._authorize(request)
        if self.engine.continuous:
            return {"batching": "engine", "engine_requests": self.engine.calls, "peak_running": self.engine.peak_running}
        return {"batching": "serve", "engine_calls": self.engine.calls, "max_batch_size": self.settings.max_batch_size}

    @api.post("/v1/completions")
    async def completions(self, request: Request) -> dict[str, Any]:
        body: CompletionRequest = await self._body(request, CompletionRequest)
        model = self._model(body.model)
        self._generating()
        check_items(body.prompts, "prompt", self.settings)
        settings = self._generation(body, model, COMPLETION_DEFAULT_TOKENS)
        prompts = [self.engine.encode_prompt(p) for p in body.prompts]
        self._fits(prompts, settings, "prompt")
        done = await self._complete(prompts, settings)
        choices = [{"index": i, "text": text, "logprobs": None, "finish_reason": reason}
                   for i, (text, reason) in enumerate(stopped(c, body.stop) for c in done)]
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()), "model": model,
                "choices": choices, "usage": usage(done)}

    @api.post("/v1/chat/completions")
    async def chat_completions(self, request: Request) -> dict[str, Any]:
        body: ChatRequest = await self._body(request, ChatRequest)
        model = self._model(body.model)
        self._generating()
        check_items([m.content for m in body.messages], "messages", self.settings)
        check_items(["".join(m.content for m in body.messages)], "messages", self.settings)
        settings = self._generation(body, model, self.settings.max_tokens, body.max_completion_tokens)
        try:
            prompt = self.engine.encode_chat([m.model_dump() for m in body.messages])
        except ValueError as error:
            raise ApiError(400, str(error), "messages") from None
        self._fits([prompt], settings, "messages")
        (done,) = await self._complete([prompt], settings)
        text, reason = stopped(done, body.stop)
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "logprobs": None, "finish_reason": reason}], "usage": usage([done])}

    @api.post("/v1/ner")
    async def ner(self, request: Request) -> dict[str, Any]:
        body: NerRequest = await self._body(request, NerRequest)
        model = self._model(body.model)
        check_items(body.texts, "texts", self.settings)
        documents = [Document(f"text-{i}", text) for i, text in enumerate(body.texts)]
        tagged = await self._on_engine(self.engine.tag, documents, model)
        results = [{"index": i, "spans": [{"start": s.start, "end": s.end, "type": s.type, "text": d.mention(s)}
                                          for s in d.spans]} for i, d in enumerate(tagged)]
        return {"model": model, "results": results}

    @api.post("/v1/ner/evaluate")
    async def evaluate(self, request: Request) -> Any:
        """The scores JSON; with "stream": true, NDJSON lines {"progress": {"done", "total"}} as documents are
        predicted, then {"result": the scores JSON} (or {"error": {...}})."""
        body: EvaluateRequest = await self._body(request, EvaluateRequest)
        model = self._model(body.model)
        corpus = body.corpus or "request"
        if body.documents is not None:
            check_items([d.text for d in body.documents], "documents", self.settings)
            documents = [gold_document(d, i) for i, d in enumerate(body.documents)]
            annotated = tuple(sorted({s.type for d in documents for s in d.spans}))
        else:
            try:  # an unknown corpus or split: the caller's to fix
                documents, annotated = await asyncio.to_thread(corpus_documents, corpus, body.split,
                                                               self.engine.family.config.data.merge_types)
            except (ValueError, FileNotFoundError) as error:
                raise ApiError(400, str(error), "corpus") from None
        job = (documents, corpus, body.split, list(body.types if body.types is not None else annotated), model)
        if body.stream:
            return StreamingResponse(self._evaluate_stream(*job), media_type="application/x-ndjson")
        return await self._on_engine(self.engine.evaluate, *job)

    async def _evaluate_stream(self, *job: Any) -> AsyncIterator[str]:
        loop, events = asyncio.get_running_loop(), asyncio.Queue()

        def progress(done: int, total: int) -> None:
            loop.call_soon_threadsafe(events.put_nowait, {"progress": {"done": done, "total": total}})

        scoring = asyncio.ensure_future(self._on_engine(self.engine.evaluate, *job, progress))
        while not scoring.done() or not events.empty():
            waiting = asyncio.ensure_future(events.get())
            await asyncio.wait({scoring, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if waiting.done():
                yield json.dumps(waiting.result()) + "\n"
            else:
                waiting.cancel()
        try:
            yield json.dumps({"result": scoring.result()}) + "\n"
        except Exception as error:  # noqa: BLE001 - the status line is sent: the failure goes in the stream, named
            yield json.dumps({"error": {"message": f"{type(error).__name__}: {error}", "type": "server_error"}}) + "\n"

    # ------------------------------------------------------------------------------------------ batching
    def _generation(self, body: Any, model: str, default: int, override: int | None = None) -> Generation:
        tokens = check_max_tokens(override or body.max_tokens, self.settings, default)
        return Generation(tokens, body.temperature, body.top_p, body.seed, model)

    async def _complete(self, prompts: list[Prompt], settings: Generation) -> list[Completion]:
        """Completions of a request's prompts, generated with other requests' prompts: by the engine itself where it
        batches continuously (vllm), through Serve's batches otherwise."""
        if self.engine.continuous:
            return await self.engine.agenerate(prompts, settings)
        return list(await asyncio.gather(*(self._generate_batch((p, settings)) for p in prompts)))

    # Serve forms a batch from what arrives within batch_wait_timeout_s and, with one batch at a time, holds the next
    # ones, formed as early and as small, until the running one ends. So batches are let through at once and merged
    # here: the engine's next call takes every prompt that queued while it was busy, up to max_batch_size.
    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01, max_concurrent_batches=MAX_WAITING_BATCHES)  # reset in __init__
    async def _generate_batch(self, jobs: list[tuple[Prompt, Generation]]) -> list[Completion]:
        """Completions of a batch of concurrent requests' prompts, generated with the batches waiting beside it."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((jobs, future))
        if self._merging is None or self._merging.done():
            self._merging = asyncio.ensure_future(self._merge_waiting())
        return await future

    async def _merge_waiting(self) -> None:
        """While batches wait: take them in arrival order, up to max_batch_size prompts, into one generation."""
        while self._waiting:
            taken = [self._waiting.popleft()]
            while self._waiting and sum(len(jobs) for jobs, _ in taken) + len(self._waiting[0][0]) <= self.settings.max_batch_size:
                taken.append(self._waiting.popleft())
            try:
                done = await self._generate([job for jobs, _ in taken for job in jobs])
            except Exception as error:  # noqa: BLE001 - every request of the merged batches gets the failure
                for _, future in taken:
                    if not future.done():
                        future.set_exception(error)
                continue
            start = 0
            for jobs, future in taken:
                if not future.done():  # a caller that went away (its request cancelled) takes nothing
                    future.set_result(done[start:start + len(jobs)])
                start += len(jobs)

    async def _generate(self, jobs: list[tuple[Prompt, Generation]]) -> list[Completion]:
        """Completions in job order: one engine call per generation setting (and adapter)."""
        groups: dict[Generation, list[int]] = defaultdict(list)
        for i, (_, settings) in enumerate(jobs):
            groups[settings].append(i)
        results: dict[int, Completion] = {}
        for settings, rows in groups.items():
            done = await self._on_engine(self.engine.generate, [jobs[i][0] for i in rows], settings)
            results.update(zip(rows, done))
        return [results[i] for i in range(len(jobs))]


def replica_gpus(settings: ServeConfig) -> float:
    """serve.gpus made concrete: Ray sets CUDA_VISIBLE_DEVICES="" in an actor that asks for no GPU, so on a CUDA
    machine the replica asks for one unless told otherwise (a cluster joined with --address: set serve.gpus)."""
    if settings.gpus is not None:
        return settings.gpus
    import torch

    return 1.0 if torch.cuda.is_available() else 0.0


def build_app(path: str | Path, settings: ServeConfig, api_key: str | None = None, top_k: int = 1) -> Any:
    """The Serve application for a model or study folder (`serve.run` it, after `serve.start` with the address);
    `top_k` > 1: the study's best trials' adapters on one base model (serve/adapters.py)."""
    if top_k > 1:
        models = {model_id: str(folder) for model_id, folder in top_trials(path, top_k).items()}
    else:
        model_dir, model_id = served_model(path)
        models = {model_id: str(model_dir)}
    return NerService.options(max_ongoing_requests=settings.max_ongoing_requests,
                              ray_actor_options={"num_cpus": settings.threads or 1, "num_gpus": replica_gpus(settings)}).bind(
        models, settings, key_digest(api_key) if api_key else None)
