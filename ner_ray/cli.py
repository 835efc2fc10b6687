"""`ner-ray`: the command line. Thin: every subcommand parses arguments and calls the library.

  ner-ray data stats CORPUS_OR_PATH [--json]
  ner-ray data convert SRC --to span-jsonl|instruct-jsonl|bio|pubtator --out DIR
  ner-ray config check FILE [key=value ...]
  ner-ray train STUDY.yaml [--experiment NAME] [--resume] [key=value ...]
  ner-ray tune STUDY.yaml [--resume] [--address ADDR] [key=value ...]   (= python -m ner_ray.tune)
  ner-ray evaluate MODEL_DIR CORPUS [--split test] [--out DIR]   |   ner-ray evaluate --endpoint URL CORPUS [--study DIR]
  ner-ray predict MODEL_DIR "TEXT" ... | - | --corpus CORPUS [--split test]
  ner-ray export MODEL_DIR --merge OUT [--register NAME] [--push-to-hub [REPO]]
  ner-ray export --combine MODEL_DIR MODEL_DIR ... [--weights W ...] [--combination linear|ties|cat] --to OUT
  ner-ray serve MODEL_DIR|STUDY_DIR [--engine hf] [--host 127.0.0.1] [--port 8000] [--api-key KEY]   (= python -m ner_ray.serve)
  ner-ray report OUTPUT_DIR   (a Tune study's or ner-ray train's runs)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ner_ray.credentials import redact
from ner_ray.errors import ConfigError, DataFormatError
from ner_ray.serve import command as serve_command
from ner_ray.tune import command as tune_command

TARGETS = ("span-jsonl", "instruct-jsonl", "bio", "pubtator")


def _add_corpus_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", dest="fmt", help="file format (default: the corpus's own, or from the file suffix)")
    parser.add_argument("--data-dir", help="folder laid out like ../shared/data (else $NER_RAY_DATA, the cache, a download)")
    parser.add_argument("--split", action="append", help="only this split (repeatable)")
    parser.add_argument("--lenient", action="store_true", help="skip and count mentions whose text does not match their offsets")


def _add_saved_model_args(parser: argparse.ArgumentParser) -> None:
    """What `evaluate` and `predict` share: how to run the saved model, and how to read a corpus."""
    parser.add_argument("--precision", choices=("bf16", "fp16", "fp32"), help="default: the precision the model trained in")
    parser.add_argument("--batch-size", type=int, help="windows per batch (default: the model's train.eval_batch_size)")
    parser.add_argument("--format", dest="fmt", help="corpus file format (default: the corpus's own, or from the suffix)")
    parser.add_argument("--data-dir", help="folder laid out like ../shared/data (else $NER_RAY_DATA, the cache, a download)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ner-ray", description="Ray-native biomedical NER experiments")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="corpus statistics and conversion").add_subparsers(dest="action", required=True)
    stats = data.add_parser("stats", help="documents, mentions by type, relations, offset mismatches per split")
    stats.add_argument("corpus", help="a named corpus (bc5cdr, ncbi_disease, demo), a corpus file or a folder")
    stats.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    _add_corpus_args(stats)
    convert = data.add_parser("convert", help="write a corpus in another format, one file per split")
    convert.add_argument("corpus", help="a named corpus, a corpus file or a folder")
    convert.add_argument("--to", required=True, choices=TARGETS)
    convert.add_argument("--out", required=True, type=Path, help="output folder (files are written whole or not at all)")
    _add_corpus_args(convert)

    config = commands.add_parser("config", help="study configs").add_subparsers(dest="action", required=True)
    check = config.add_parser("check", help="validate a study YAML and show its resolved experiments")
    check.add_argument("file", type=Path)
    check.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.lr=3e-4")
    train = commands.add_parser("train", help="train experiments of a study with Ray Train (all of them, or one)")
    train.add_argument("file", type=Path, help="study YAML")
    train.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. data.corpus=ncbi_disease")
    train.add_argument("--experiment", help="run only this experiment (default: every experiment of the study)")
    train.add_argument("--resume", action="store_true", help="read back the runs (experiment, seed) that finished before "
                       "with the same config instead of training them again")
    tune_command.add_arguments(commands.add_parser("tune", help="run a study on Ray Tune (ASHA + Optuna), logged to MLflow"))
    evaluate = commands.add_parser("evaluate", help="score a saved model (any family) on a corpus split: scores.json "
                                   "and predictions.pubtator")
    evaluate.add_argument("model_dir", type=Path, nargs="?", help="a saved model folder (train.output_dir/<experiment>/model); "
                          "with --endpoint, give the corpus alone")
    evaluate.add_argument("corpus", nargs="?", help="a named corpus (bc5cdr, ncbi_disease, demo), a corpus file or a folder")
    evaluate.add_argument("--endpoint", metavar="URL", help="score through a running `ner-ray serve` at URL instead "
                          "(the corpus is read here and posted; API key from $NER_RAY_API_KEY)")
    evaluate.add_argument("--study", type=Path, metavar="STUDY_DIR", help="with --endpoint serving this study's best "
                          "model (`ner-ray serve STUDY_DIR`): record the scores in its results.json and MLflow run")
    evaluate.add_argument("--split", default="test", help="the split to score (default: test)")
    evaluate.add_argument("--out", type=Path, help="where to write scores.json and predictions.pubtator "
                          "(default: MODEL_DIR/evaluations/<corpus>-<split>)")
    evaluate.add_argument("--types", nargs="+", help="score only these entity types (default: those the corpus annotates)")
    _add_saved_model_args(evaluate)
    predict = commands.add_parser("predict", help="a saved model's spans (any family) for texts or a corpus split, "
                                  "one JSON line per text or document")
    predict.add_argument("model_dir", type=Path, help="a saved model folder (train.output_dir/<experiment>/model)")
    predict.add_argument("texts", nargs="*", help="texts to tag; '-' reads one text per line from standard input")
    predict.add_argument("--corpus", help="tag every document of a corpus split instead (its annotations are not read "
                         "by the model)")
    predict.add_argument("--split", default="test", help="the corpus split (default: test)")
    _add_saved_model_args(predict)
    export = commands.add_parser("export", help="a saved generative model (span_gen, instruct) as one plain Hugging Face "
                                 "folder: LoRA merged, safetensors, tokenizer, generation config (transformers and vLLM load "
                                 "it); or several models' adapters combined into one model (--combine)")
    export.add_argument("model_dir", type=Path, nargs="?", help="a saved model folder (a run's model/), with --merge")
    export.add_argument("--merge", type=Path, metavar="OUT", help="the new plain Hugging Face folder to write")
    export.add_argument("--register", metavar="NAME", help="register the merged folder as a new version of model NAME in "
                        "the MLflow Model Registry")
    export.add_argument("--tracking-uri", help="MLflow tracking URI for --register (default: $MLFLOW_TRACKING_URI, else "
                        "mlflow.db beside OUT)")
    export.add_argument("--push-to-hub", nargs="?", const="", metavar="REPO", help="also upload the merged folder to the "
                        "Hugging Face Hub (needs HF_TOKEN or a stored login; REPO default: ner-ray-<OUT>-<UTC time>)")
    export.add_argument("--combine", type=Path, nargs="+", metavar="MODEL_DIR", help="saved LoRA models of one base whose "
                        "adapters are combined into one new ner_ray model (written to --to; evaluate, serve or --merge it)")
    export.add_argument("--weights", type=float, nargs="+", help="one weight per --combine model (default: 1/n each)")
    export.add_argument("--combination", default="linear", help="PEFT's combination: linear (default), ties or cat")
    export.add_argument("--density", type=float, help="ties: the share of each update's largest entries kept (default 0.5)")
    export.add_argument("--to", type=Path, metavar="OUT", help="the new model folder --combine writes")
    serve_command.add_arguments(commands.add_parser("serve", help="serve a saved model (or a study's best) with Ray Serve: "
                                                    "OpenAI completions and chat, /v1/ner, /v1/ner/evaluate"))
    report = commands.add_parser("report", help="render the table, report.md and plot again: a Tune study's (from its "
                                 "results.json) or ner-ray train's (from its runs' metrics.json)")
    report.add_argument("output_dir", type=Path, help="the study's train.output_dir")
    return parser


def _export(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """`export MODEL_DIR --merge OUT [--register NAME] [--push-to-hub [REPO]]` or `export --combine A B ... --to OUT`."""
    from ner_ray.inference import export

    if args.combine:
        if args.model_dir or args.merge or args.to is None:
            parser.error("export --combine A B ... [--weights ...] --to OUT (then `export OUT --merge ...` to merge it)")
        weights = args.weights or [1.0 / len(args.combine)] * len(args.combine)
        density = args.density if args.density is not None else (0.5 if args.combination == "ties" else None)
        print(f"combined model: {export.combine_models(args.combine, weights, args.to, args.combination, density)}")
        return 0
    if args.model_dir is None or args.merge is None:
        parser.error("export MODEL_DIR --merge OUT, or export --combine A B ... --to OUT")
    if args.push_to_hub is not None:
        from ner_ray.inference.publish import hub_token

        if not hub_token():  # before the export's minutes, not after
            raise PermissionError("--push-to-hub needs a Hugging Face token: set HF_TOKEN or run `huggingface-cli login`")
    merged = export.export_merged(args.model_dir, args.merge)
    print(f"merged model: {merged}")
    if args.register:
        from ner_ray.inference.publish import register_model, tracking_uri

        version = register_model(merged, args.register, tracking_uri(args.tracking_uri, merged),
                                 {"ner_ray.source": str(args.model_dir)})
        print(f"registered: {version['name']} version {version['version']} ({version['tracking_uri']}, run {version['run_id']})")
    if args.push_to_hub is not None:
        from ner_ray.inference.publish import push_to_hub

        print(f"pushed to the Hugging Face Hub: {push_to_hub(merged, args.push_to_hub or None)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = tune_command.parse_with_overrides(parser, argv)
    try:
        if args.command == "data" and args.action == "stats":
            return _data_stats(args)
        if args.command == "data" and args.action == "convert":
            return _data_convert(args)
        if args.command == "config" and args.action == "check":
            return _config_check(args)
        if args.command == "train":
            return _train(args)
        if args.command == "tune":
            return tune_command.run(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "predict":
            return _predict(args)
        if args.command == "export":
            return _export(parser, args)
        if args.command == "serve":
            return serve_command.run(args)
        if args.command == "report":
            return _report(args)
    except (DataFormatError, ConfigError, ValueError, FileNotFoundError, FileExistsError, PermissionError) as err:
        print(f"error: {redact(str(err))}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")


def _report(args: argparse.Namespace) -> int:
    """A Tune study's report from its results.json, or else the comparison report of `ner-ray train`'s runs."""
    from ner_ray.artifacts import RESULTS
    from ner_ray.comparison import comparison_table, read_train_runs, write_comparison_report
    from ner_ray.tune.study_report import write_report

    if (args.output_dir / RESULTS).is_file():
        table, report = write_report(args.output_dir)
    else:
        heading, runs = read_train_runs(args.output_dir)
        if not runs:
            raise ConfigError(f"{args.output_dir}: neither a Tune study's {RESULTS} (python -m ner_ray.tune STUDY.yaml writes it) "
                              "nor ner-ray train's <experiment>/[seed<k>/]metrics.json")
        table, report = comparison_table(runs), write_comparison_report(args.output_dir, heading, runs)
    print(f"{table}\nreport: {report}")
    return 0


def _config_check(args: argparse.Namespace) -> int:
    """The study's summary, then its pre-flight: every problem a run would meet before any trial, at once."""
    from ner_ray.config import check_study, load_study
    from ner_ray.tune.preflight import check_study as preflight

    print(redact(check_study(args.file, args.overrides)))
    findings = preflight(load_study(args.file, args.overrides), args.overrides)
    for warning in findings.warnings:
        print(f"warning: {redact(warning)}", file=sys.stderr)
    findings.raise_errors()
    print("pre-flight: corpus, model, output folder, MLflow store, metric and schedule checked")
    return 0


def _load(args: argparse.Namespace):
    from ner_ray.data.corpora import load_corpus

    splits = tuple(args.split) if args.split else None
    return load_corpus(args.corpus, fmt=args.fmt, splits=splits, data_dir=args.data_dir, lenient=args.lenient)


def _data_stats(args: argparse.Namespace) -> int:
    from ner_ray.data.corpora import corpora_in
    from ner_ray.data.stats import corpus_stats, format_stats

    path = Path(args.corpus)
    if path.is_dir() and corpora_in(path):  # a data root holding several named corpora
        names, data_dir = corpora_in(path), path
    else:
        names, data_dir = [args.corpus], args.data_dir
    results = {}
    for name in names:
        corpus = _load(argparse.Namespace(**{**vars(args), "corpus": name, "data_dir": data_dir}))
        results[corpus.name] = (corpus_stats(corpus), corpus.reports)
    if args.json:
        payload = {name: stats for name, (stats, _) in results.items()}
        print(json.dumps(payload if len(payload) > 1 else next(iter(payload.values())), indent=2))
    else:
        print("\n\n".join(format_stats(name, stats, reports) for name, (stats, reports) in results.items()))
    return 0


def _data_convert(args: argparse.Namespace) -> int:
    from ner_ray.data.convert import convert_corpus

    corpus = _load(args)
    for split, (path, count) in convert_corpus(corpus, args.to, args.out).items():
        print(f"{split}: {count} records -> {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from ner_ray.comparison import comparison_table, report_heading, write_comparison_report
    from ner_ray.config import load_study
    from ner_ray.train.preflight import Findings, check_experiment
    from ner_ray.train.run import train_repeats

    study = load_study(args.file, args.overrides)
    names = [args.experiment] if args.experiment else list(study.experiments)
    configs = {name: study.resolve(name) for name in names}  # every name checked before anything trains
    findings = Findings()
    for name, config in configs.items():
        check_experiment(config, findings, f"experiment '{name}': " if len(configs) > 1 else "")
    for warning in dict.fromkeys(findings.warnings):
        print(f"warning: {redact(warning)}", file=sys.stderr)
    findings.raise_errors()
    output_dir = Path(next(iter(configs.values())).train.output_dir).resolve()
    heading = report_heading((c.model.name, c.data.corpus) for c in configs.values())
    runs = []
    for name, config in configs.items():
        runs.extend(train_repeats(config, name, resume=args.resume))
        report = write_comparison_report(output_dir, heading, runs)  # after every experiment: a stopped suite keeps its table
    print(comparison_table(runs))
    print(f"metrics: {output_dir}/<experiment>/metrics.json\nreport: {report}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ner_ray.artifacts import PREDICTIONS, SCORES
    from ner_ray.inference.evaluate import evaluate_model, progress_bar

    if args.endpoint:
        return _evaluate_endpoint(args)
    if args.model_dir is None or args.corpus is None:
        raise ValueError("ner-ray evaluate: give MODEL_DIR and CORPUS (or --endpoint URL and CORPUS)")
    out = args.out or args.model_dir / "evaluations" / f"{Path(args.corpus).name}-{args.split}"
    with progress_bar(f"{Path(args.corpus).name} {args.split}") as progress:
        result = evaluate_model(args.model_dir, args.corpus, args.split, out, types=args.types,
                                batch_size=args.batch_size, precision=args.precision, fmt=args.fmt,
                                data_dir=args.data_dir, progress=progress)
    scores = result[args.split]
    print(f"{args.split}_f1 {scores['f1']:.4f} (precision {scores['precision']:.4f}, recall {scores['recall']:.4f}; "
          f"tp {scores['tp']}, fp {scores['fp']}, fn {scores['fn']}) on {scores['documents']} documents of "
          f"{args.corpus} {args.split}, types {', '.join(result['types'])}, {result['inference_precision']}; "
          f"{scores['gold_crossing_windows']} gold entities crossed a window boundary")
    print(f"scores: {out / SCORES}\npredictions: {out / PREDICTIONS}")
    return 0


def _evaluate_endpoint(args: argparse.Namespace) -> int:
    from ner_ray.artifacts import SCORES, write_json
    from ner_ray.serve.client import evaluate_endpoint, served_models

    if args.corpus is not None:
        raise ValueError(f"ner-ray evaluate --endpoint scores through the service's model: give the corpus alone, not "
                         f"{args.model_dir} and {args.corpus}")
    if args.model_dir is None:
        raise ValueError("ner-ray evaluate --endpoint URL CORPUS: the corpus is missing")
    corpus = str(args.model_dir)  # with --endpoint the one positional is the corpus
    if args.study is not None:
        from ner_ray.tune.served_scores import check_served

        check_served(args.study, served_models(args.endpoint))  # before the corpus is scored
    result = evaluate_endpoint(args.endpoint, corpus, args.split, args.types, args.fmt, args.data_dir)
    scores = result[args.split]
    print(f"{args.split}_f1 {scores['f1']:.4f} (precision {scores['precision']:.4f}, recall {scores['recall']:.4f}) on "
          f"{scores['documents']} documents of {corpus} {args.split}, scored by {args.endpoint} ({result['model']}, "
          f"{result['inference_precision']})")
    if args.out:
        print(f"scores: {write_json(args.out / SCORES, result)}")
    if args.study is not None:
        from ner_ray.tune.served_scores import record_served

        entry = record_served(args.study, result)
        where = f" and MLflow run {entry['mlflow_run_id']}" if entry.get("mlflow_run_id") else ""
        print(f"recorded as served {args.split}_f1 of {entry['model']} in {args.study / 'results.json'}{where}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    """One JSON line per input: {"id", "spans": [{"start", "end", "type", "text"}], "relations": [...]}."""
    from dataclasses import asdict

    from ner_ray.data.document import Document
    from ner_ray.inference.evaluate import corpus_documents
    from ner_ray.inference.model_files import load_model
    from ner_ray.inference.predict import predict_documents

    if bool(args.texts) == bool(args.corpus):
        raise ValueError("ner-ray predict: give texts (or '-' to read them from standard input) or --corpus, not both "
                         "and not neither")
    texts = [line.rstrip("\n") for line in sys.stdin] if args.texts == ["-"] else args.texts
    loaded = load_model(args.model_dir)
    if args.corpus:
        documents, _ = corpus_documents(args.corpus, args.split, loaded.family.config.data.merge_types, args.fmt,
                                        args.data_dir)
    else:
        documents = [Document(f"text-{i}", text) for i, text in enumerate(texts, 1)]
    for doc in predict_documents(loaded, documents, args.batch_size, args.precision):
        spans = [{"start": s.start, "end": s.end, "type": s.type, "text": doc.mention(s)} for s in doc.spans]
        print(json.dumps({"id": doc.id, "spans": spans, "relations": [asdict(r) for r in doc.relations]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
