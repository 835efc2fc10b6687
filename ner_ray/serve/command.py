"""`ner-ray serve MODEL_DIR|STUDY_DIR [--top-k N]` (= `python -m ner_ray.serve ...`): start a local Ray (or join --address),
bind the HTTP proxy to serve.host:serve.port (127.0.0.1:8000 unless told), and serve the model until interrupted.
Settings come from the model's own config (its `serve` block) with these flags over them.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

API_KEY_ENV = "NER_RAY_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a saved model folder, or a study folder (its best trial's model is served)")
    parser.add_argument("--engine", help="inference engine (serve.engine): hf, vllm, or auto (vllm for a causal LM where "
                        "installed, else hf)")
    parser.add_argument("--host", help="address to bind (serve.host; default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (serve.port; default 8000)")
    parser.add_argument("--api-key", help=f"require Authorization: Bearer <key> on every route (or set ${API_KEY_ENV})")
    parser.add_argument("--max-batch-size", type=int, help="prompts generated together (serve.max_batch_size)")
    parser.add_argument("--top-k", type=int, default=1, metavar="N", help="with a study folder: serve its N best trials' "
                        "LoRA adapters on one base model, as <study>:<trial_id> (a request's `model` picks one; "
                        "none: the best; engine hf)")
    parser.add_argument("--address", help="Ray cluster to join (e.g. auto); default: a local Ray")


def settings_for(args: argparse.Namespace) -> Any:
    """The model's serve block with the given flags over it (validated as the schema validates a study)."""
    from ner_ray.artifacts import read_model_meta
    from ner_ray.config import ServeConfig
    from ner_ray.serve.app import served_model
    from ner_ray.serve.engines import resolve_engine

    model_dir, _ = served_model(args.path)
    saved = read_model_meta(model_dir).get("config", {}).get("serve", {})
    flags = {"engine": args.engine, "host": args.host, "port": args.port, "max_batch_size": args.max_batch_size}
    settings = ServeConfig.model_validate({**saved, **{k: v for k, v in flags.items() if v is not None}})
    return settings.model_copy(update={"engine": resolve_engine(settings.engine, model_dir, args.top_k)})


def run(args: argparse.Namespace) -> int:
    import ray
    from ray import serve

    from ner_ray.serve.app import build_app

    settings = settings_for(args)
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if args.top_k < 1:
        raise ValueError(f"--top-k {args.top_k}: give 1 or more")
    app = build_app(args.path, settings, api_key, args.top_k)  # a bad folder fails here, before Ray starts
    ray.init(address=args.address, include_dashboard=False, logging_level="WARNING")
    serve.start(http_options={"host": settings.host, "port": settings.port})
    print(f"serving {args.path} at http://{settings.host}:{settings.port}/v1 (engine {settings.engine}"
          f"{', API key required' if api_key else ''}); Ctrl-C stops", flush=True)
    try:
        serve.run(app, name="ner_ray", route_prefix="/", blocking=True)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ner_ray.serve", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
