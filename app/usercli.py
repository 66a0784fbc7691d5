"""The user commands of `trainyard` (docs/cli.md): they talk to the HTTP API through
app/client.py, so they work from any machine that reaches the API.

    trainyard models create --model-ver v1 --epochs 10     trainyard run UUID
    trainyard models list | show UUID                      trainyard logs UUID [-f]
    trainyard wait UUID                                    trainyard nodes [drain|undrain NAME]

Every command takes --json (the API's data as JSON), --url and --token (else TRAINYARD_URL,
TRAINYARD_TOKEN or ~/.config/trainyard/config.toml). Exit status: 0 success; 1 `wait` saw the
run end otherwise than COMPLETED; 3 the API answered an error (printed with its message) or
could not be reached; 124 `wait --timeout` ran out; 2 a usage error (argparse).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from app.api.responses import RetryPolicy
from app.client import ApiError, FollowUnsupported, TrainyardClient, WaitTimeout

EXIT_NOT_COMPLETED = 1
EXIT_API_ERROR = 3
EXIT_TIMEOUT = 124

Handler = Callable[[TrainyardClient, argparse.Namespace], int]


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


# --- models ----------------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    """`--set lr=0.1` → 0.1; a value that is not JSON stays a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _create_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if args.file:
        source = sys.stdin.read() if args.file == "-" else open(args.file).read()  # noqa: SIM115
        try:
            body = json.loads(source)
        except ValueError as exc:
            raise ApiError(0, "INVALID_JSON", f"{args.file}: {exc}") from None
    for key, value in (
        ("modelNo", args.model_no),
        ("modelVer", args.model_ver),
        ("trainType", args.train_type),
        ("memo", args.memo),
        ("dataset", args.dataset),
        ("image", args.image),
    ):
        if value is not None:
            body[key] = value
    params = dict(body.get("params") or {})
    if args.params:
        try:
            params.update(json.loads(args.params))
        except (ValueError, TypeError) as exc:
            raise ApiError(0, "INVALID_JSON", f"--params: {exc}") from None
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ApiError(0, "INVALID_ARGUMENT", f"--set {item!r}: expected KEY=VALUE")
        params[key] = _parse_value(value)
    if args.epochs is not None:
        params["total_epoch"] = args.epochs
    if args.val_interval is not None:
        params["val_interval"] = args.val_interval
    if params:
        body["params"] = params
    resources = dict(body.get("resources") or {})
    if args.gpus is not None:
        resources["gpus"] = args.gpus
    if args.memory_mb is not None:
        resources["memory_mb"] = args.memory_mb
    if resources:
        body["resources"] = resources
    if args.retry is not None:
        body["retry"] = parse_retry(args.retry)
    body.setdefault("modelNo", "G1")
    return body


def parse_retry(text: str) -> RetryPolicy | None:
    """`--retry 3:NODE_LOST,EXIT:137` → {"max": 3, "on": ["NODE_LOST", "EXIT:137"]}; `off` →
    None (no automatic retry). The causes are checked by the API (docs/retry.md), which names
    the one it refuses."""
    if text.strip().lower() == "off":
        return None
    count, sep, causes = text.partition(":")
    if not sep or not count.strip().isdigit():
        expected = "expected MAX:CAUSE[,CAUSE…] (e.g. 3:NODE_LOST,OOM) or off"
        raise ApiError(0, "INVALID_ARGUMENT", f"--retry {text!r}: {expected}")
    return {"max": int(count), "on": [c.strip() for c in causes.split(",") if c.strip()]}


def _retry(api: TrainyardClient, args: argparse.Namespace) -> int:
    model = api.set_retry(args.uuid, parse_retry(args.policy))
    if args.json:
        _print_json(model)
        return 0
    policy = model["retryPolicy"]
    print(f"{model['uuid']}: " + (
        f"retried up to {policy['max']} time(s) on {', '.join(policy['on'])}"
        if policy else "no automatic retry"
    ))  # fmt: skip
    return 0


def _models_create(api: TrainyardClient, args: argparse.Namespace) -> int:
    model = api.create_model(_create_body(args))
    if args.json:
        _print_json(model)
    else:
        print(model["uuid"])
    return 0


def _models_list(api: TrainyardClient, args: argparse.Namespace) -> int:
    # Sorted by a metric: show that metric's best value too.
    metric = args.sort.removeprefix("best:") if args.sort.startswith("best:") else ""
    page = api.list_models(
        args.status, args.model_no, args.page, args.size,
        search=args.search, sort=args.sort, direction=args.dir, metric=metric,
    )  # fmt: skip
    if args.json:
        _print_json(page)
        return 0
    header = ["UUID", "NO", "VERSION", "STATUS", "STEP1", "STEP2", "EPOCHS", "LAST ERROR"]
    rows = [
        [
            m["uuid"],
            m["modelNo"],
            m["modelVer"],
            m["statusCd"],
            m["step1Status"],
            m["step2Status"],
            f"{m['progress']['epochsDone']}/{m['progress']['totalEpoch']}",
            m["lastError"] or "",
            *([_metric_text(m)] if metric else []),
        ]
        for m in page["content"]
    ]
    _table(rows, [*header, *([metric.upper()] if metric else [])])
    print(f"{page['totalElements']} model(s), page {args.page + 1} of {max(1, page['totalPages'])}")
    return 0


def _metric_text(model: Any) -> str:
    column = model.get("metricValue") or {}
    if column.get("value") is None:
        return "-"
    return f"{column['value']} (epoch {column['epoch']})"


def _models_show(api: TrainyardClient, args: argparse.Namespace) -> int:
    model = api.model(args.uuid)
    if args.json:
        _print_json(model)
        return 0
    progress = model["progress"]
    lines = [
        ("uuid", model["uuid"]),
        ("model", f"{model['modelNo']} {model['modelVer']} ({model['trainTypeName']})"),
        ("status", f"{model['statusCd']} {model['statusName']}"),
        ("step1", f"{model['step1Status']} {model['step1StrtDttm'] or ''} ~ "
                  f"{model['step1EndDttm'] or ''}"),
        ("step2", f"{model['step2Status']} {model['step2StrtDttm'] or ''} ~ "
                  f"{model['step2EndDttm'] or ''}"),
        ("epochs", f"{progress['epochsDone']}/{progress['totalEpoch']}"
                   f" (checkpoint {progress['checkpointEpoch'] or '-'})"),
        ("best epoch", str(model["bestEpoch"] or "-")),
        ("last error", model["lastError"] or "-"),
        ("commands", ", ".join(model["allowedCommands"]) or "-"),
    ]
    for key, value in lines:
        print(f"{key:<11} {value}")
    if model["jobs"]:
        print()
        _table(
            [
                [str(j["id"]), j["jobType"], str(j["attempt"]), j["statusCd"],
                 j["node"] or "", ",".join(map(str, j["gpuIds"] or [])),
                 "" if j["exitCode"] is None else str(j["exitCode"])]
                for j in model["jobs"]
            ],
            ["JOB", "TYPE", "ATTEMPT", "STATUS", "NODE", "GPUS", "EXIT"],
        )
    return 0


# --- commands --------------------------------------------------------------------------------


def _command(name: str) -> Handler:
    def handler(api: TrainyardClient, args: argparse.Namespace) -> int:
        key = args.idempotency_key
        if name == "test":
            answer = api.test(args.uuid, args.epoch, key)
        else:
            answer = getattr(api, name)(args.uuid, key)
        if args.json:
            _print_json(answer)
            return 0
        job = answer["job"]
        queued = f", job {job['id']} {job['statusCd']}" if job else ""
        print(f"{name}: model {answer['uuid']} {answer['statusCd']}{queued}")
        return 0

    return handler


def _logs(api: TrainyardClient, args: argparse.Namespace) -> int:
    if args.follow:
        try:
            for line in api.follow_logs(args.uuid, offset=args.offset):
                if args.json:
                    print(json.dumps({"offset": line.offset, "line": line.text},
                                     ensure_ascii=False), flush=True)
                else:
                    print(line.text, flush=True)
            return 0
        except FollowUnsupported:
            print("this server does not stream logs; showing the stored tail", file=sys.stderr)
    answer = api.logs(args.uuid, args.job_id)
    if args.json:
        _print_json(answer)
        return 0
    if answer["logTail"]:
        print(answer["logTail"], end="" if answer["logTail"].endswith("\n") else "\n")
    if answer["note"]:
        print(answer["note"], file=sys.stderr)
    return 0


def _wait(api: TrainyardClient, args: argparse.Namespace) -> int:
    """Exit 0 when the run ended COMPLETED. The run waited for is the test (step2) when one is
    in progress as `wait` starts, or with --test; else the training (the model's status)."""
    start = api.model(args.uuid)
    judge_test = args.test or start["step2Status"] == "IN_PROGRESS"
    try:
        model = api.wait(args.uuid, args.timeout, args.interval)
    except WaitTimeout as exc:
        if args.json:
            _print_json(exc.model)
        print(f"timed out: {exc}", file=sys.stderr)
        return EXIT_TIMEOUT
    state = model["step2Status"] if judge_test else model["statusCd"]
    if args.json:
        _print_json(model)
    else:
        what = "test" if judge_test else "model"
        error = f" ({model['lastError']})" if model["lastError"] else ""
        print(f"{what} {model['uuid']}: {state}{error}")
    return 0 if state == "COMPLETED" else EXIT_NOT_COMPLETED


# --- nodes -----------------------------------------------------------------------------------


NODE_COLUMNS = ["NODE", "STATE", "BEAT", "RUNTIME", "JOBS", "HELD", "GPUS", "DRAIN"]


def _node_rows(nodes: list[Any]) -> list[list[str]]:
    rows = []
    for n in nodes:
        gpus = " ".join(
            f"{g['gpuId']}:{'job' + str(g['jobId']) if g['jobId'] is not None else 'free'}"
            for g in n["gpus"]
        )
        drain = "draining" if n["drain"]["draining"] else ""
        if n["drain"]["flagFile"]:
            drain += " (flag file)"
        capacity = n["capacity"]
        rows.append(
            [
                n["name"],
                n["state"],
                f"{n['heartbeatAgeS']:.0f}s",
                n["runtime"] or "",
                f"{capacity['jobsHeld']}/{capacity['maxJobs'] or '-'}",
                " ".join(f"{j['jobId']}({j['statusCd']})" for j in n["jobs"]) or "-",
                gpus or "-",
                drain,
            ]
        )
    return rows


def _nodes(api: TrainyardClient, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        listing = api.nodes()
        if args.json:
            _print_json(listing)
        else:
            _table(_node_rows(list(listing["nodes"])), NODE_COLUMNS)
        return 0
    if not args.name:
        raise ApiError(0, "INVALID_ARGUMENT", f"`nodes {action}` needs a node name")
    node = getattr(api, {"show": "node"}.get(action, action))(args.name)
    if args.json:
        _print_json(node)
        return 0
    _table(_node_rows([node]), NODE_COLUMNS)
    if action == "drain":
        print(f"node {node['name']} is draining: it takes no new job; "
              f"{len(node['jobs'])} job(s) it holds finish")
    elif action == "undrain" and node["drain"]["draining"]:
        print(f"node {node['name']} still drains: its flag file exists on its host "
              "(trainyard undrain there)", file=sys.stderr)
    return 0


# --- webhooks --------------------------------------------------------------------------------

WEBHOOK_COLUMNS = ["ID", "MODEL", "JOB", "CHANGE", "ENDPOINT", "STATUS", "TRIES", "LAST ANSWER"]


def _webhooks(api: TrainyardClient, args: argparse.Namespace) -> int:
    page = api.webhook_deliveries(args.model, args.status, args.page, args.size)
    if args.json:
        _print_json(page)
        return 0
    rows = []
    for d in page["content"]:
        status = d["event"]["model"]["status"]
        answer = d["lastError"] or (f"HTTP {d['lastStatusCode']}" if d["lastStatusCode"] else "-")
        rows.append([
            str(d["id"]), d["modelUuid"], str(d["jobId"] or "-"),
            f"{status['old']} -> {status['new']}",
            d["endpoint"], d["status"], str(d["attempts"]), answer[:60],
        ])  # fmt: skip
    _table(rows, WEBHOOK_COLUMNS)
    print(f"page {args.page + 1} of {max(page['totalPages'], 1)}; {page['totalElements']} in all")
    return 0


# --- wiring ----------------------------------------------------------------------------------


def _connection_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the API's data as JSON")
    common.add_argument("--url", help="the API (else TRAINYARD_URL, the config file, "
                        "http://127.0.0.1:8000)")
    common.add_argument("--token", help="bearer token (else TRAINYARD_TOKEN, API_TOKEN, "
                        "the config file)")
    return common


def add_user_commands(commands: Any) -> None:
    """Add the user commands to `trainyard`'s subparsers."""
    common = _connection_options()

    models = commands.add_parser("models", help="create, list and show models (API)")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    create = model_commands.add_parser("create", parents=[common], help="register a model")
    create.add_argument("--file", help="a JSON body of POST /api/models ('-': stdin); the "
                        "options below override its keys")
    create.add_argument("--model-no", help="G1..G4 (default G1)")
    create.add_argument("--model-ver", help="version, e.g. v1.0.0")
    create.add_argument("--train-type", help="GENERAL (default), FINE_TUNE, TRANSFER")
    create.add_argument("--memo")
    create.add_argument("--dataset", help="a folder under DATASET_ROOT, e.g. demo")
    create.add_argument("--image", help="trainer image (default TRAINER_IMAGE)")
    create.add_argument("--epochs", type=int, help="params.total_epoch")
    create.add_argument("--val-interval", type=int, help="params.val_interval")
    create.add_argument("--params", help="params as a JSON object")
    create.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="one param (VALUE parsed as JSON when it is); repeatable")
    create.add_argument("--gpus", type=int, help="resources.gpus")
    create.add_argument("--memory-mb", type=int, help="resources.memory_mb")
    create.add_argument("--retry", metavar="MAX:CAUSES",
                        help="automatic retry, e.g. 3:NODE_LOST,OOM,EXIT:137 (docs/retry.md)")
    create.set_defaults(user=_models_create)
    listing = model_commands.add_parser(
        "list", parents=[common], help="newest first, or sorted and searched"
    )
    listing.add_argument("--status", default="", help="READY, IN_PROGRESS, COMPLETED, …")
    listing.add_argument("--model-no", default="")
    listing.add_argument("--page", type=int, default=0)
    listing.add_argument("--size", type=int, default=20)
    listing.add_argument("--search", default="", help="modelVer or memo contains this")
    listing.add_argument(
        "--sort", default="",
        help="created (default), step1StrtDttm, step1EndDttm, step2StrtDttm, step2EndDttm, "
        "or best:[train.|val.]METRIC[:min|:max], e.g. best:val_loss",
    )  # fmt: skip
    listing.add_argument("--dir", default="", choices=["", "asc", "desc"])
    listing.set_defaults(user=_models_list)
    show = model_commands.add_parser("show", parents=[common], help="one model and its jobs")
    show.add_argument("uuid")
    show.set_defaults(user=_models_show)

    for name, text in (
        ("run", "train a READY model"),
        ("resume", "resume a STOPPED model from its latest checkpoint"),
        ("restart", "train a STOPPED or ERROR model again from scratch"),
        ("cancel", "cancel the training"),
        ("test-cancel", "cancel the test"),
    ):
        command = commands.add_parser(name, parents=[common], help=f"{text} (API)")
        command.add_argument("uuid")
        command.add_argument("--idempotency-key", help="a repeat with the same key answers once")
        command.set_defaults(user=_command(name.replace("-", "_")))
    test = commands.add_parser("test", parents=[common], help="test a trained epoch (API)")
    test.add_argument("uuid")
    test.add_argument("epoch", type=int)
    test.add_argument("--idempotency-key")
    test.set_defaults(user=_command("test"))

    logs = commands.add_parser("logs", parents=[common], help="the current job's log (API)")
    logs.add_argument("uuid")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="print lines as the job writes them, until it ends")
    logs.add_argument("--offset", type=int, help="-f: start at this byte offset")
    logs.add_argument("--job-id", type=int, help="another of the model's jobs (stored tail)")
    logs.set_defaults(user=_logs)

    wait = commands.add_parser(
        "wait", parents=[common],
        help="until the model's run ends; exit 0 on COMPLETED, 1 otherwise, 124 on --timeout",
    )
    wait.add_argument("uuid")
    wait.add_argument("--timeout", type=float, help="seconds (default: no limit)")
    wait.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    wait.add_argument("--test", action="store_true",
                      help="judge the test (step2), not the training")
    wait.set_defaults(user=_wait)

    nodes = commands.add_parser(
        "nodes", parents=[common],
        help="worker nodes, their GPUs and jobs; drain/undrain through the API",
    )
    nodes.add_argument("action", nargs="?", default="list",
                       choices=["list", "show", "drain", "undrain"])
    nodes.add_argument("name", nargs="?")
    nodes.set_defaults(user=_nodes)

    retry = commands.add_parser(
        "retry", parents=[common], help="set or clear a model's automatic retry policy (API)"
    )
    retry.add_argument("uuid")
    retry.add_argument("policy", metavar="MAX:CAUSES|off",
                       help="e.g. 3:NODE_LOST,OOM,EXIT:137; off: no automatic retry")
    retry.set_defaults(user=_retry)

    webhooks = commands.add_parser(
        "webhooks", parents=[common], help="webhook deliveries, newest first (API)"
    )
    webhooks.add_argument("--model", help="only this model's (a uuid)")
    webhooks.add_argument("--status", default="", choices=["", "PENDING", "DELIVERED", "DEAD"])
    webhooks.add_argument("--page", type=int, default=0)
    webhooks.add_argument("--size", type=int, default=20)
    webhooks.set_defaults(user=_webhooks)


def run_user_command(args: argparse.Namespace) -> int:
    try:
        with TrainyardClient.from_env(args.url, args.token) as api:
            return int(args.user(api, args))
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_API_ERROR
    except KeyboardInterrupt:  # Ctrl-C on `logs -f` or `wait`: no traceback
        return 130
