"""The ``easyai`` command: argument parsing, dispatch, and exit codes.

Exit codes: 0 success; 1 the portal refused (its message printed, field errors
one per line as ``path: message``), or it could not be reached, or you are not
logged in; 2 a usage mistake. ``exec`` exits with the remote command's code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from easyai_cli import __version__, account, files, jobs, logs, models, pipelines, shell, specs, ssh, usage, webapps
from easyai_cli import config as config_module
from easyai_cli import datasets as datasets
from easyai_cli.client import CLIError
from easyai_cli.context import Context

Handler = Callable[[Context, argparse.Namespace], int]


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _command(
    subparsers: argparse._SubParsersAction, name: str, handler: Handler, help_text: str, example: str, **kwargs
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=kwargs.pop("description", help_text[0].upper() + help_text[1:] + "."),
        epilog="example:\n" + "\n".join(f"  {line}" for line in example.strip().splitlines()),
        formatter_class=_Formatter,
        **kwargs,
    )
    parser.set_defaults(handler=handler)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _not_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


JOB_HELP = "a job id (j-…) or a job name in your current team (the newest job of that name)"

FRAMEWORK_HELP = {
    "pytorch": (
        "a PyTorch job (arena's pytorchjob)",
        "--workers N counts every task, the master included: one master and N-1 workers "
        "(--workers 1 is a lone master). Every task gets MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK.",
        "easyai submit pytorch --name mnist --image pytorch/pytorch:2.3 --workers 3 --gpus 1 \\\n"
        '    --cpu 4 --memory 16Gi "python train.py --epochs 10"',
    ),
    "tensorflow": (
        "a TensorFlow job (arena's tfjob)",
        "--workers N worker tasks, --ps M parameter servers, and one chief with --chief. Every task gets TF_CONFIG.",
        "easyai submit tensorflow --name tf-dist --image tensorflow/tensorflow:2.16.1 --workers 2 --ps 1 \\\n"
        '    --chief "python train.py"',
    ),
    "batch": (
        "a plain batch job",
        "One role, worker, with --workers N tasks; each knows its index from EASYAI_ROLE_INDEX.",
        "easyai submit batch --name preprocess --image python:3.11-slim --workers 4 -- python prep.py --shard auto",
    ),
}


def _submit_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--dry-run, -o, -q, --team: on `submit` itself and on each framework (SUPPRESS keeps one from hiding the other)."""

    def default(value):
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--dry-run", action="store_true", default=default(False), help="validate only: submit nothing")
    parser.add_argument(
        "-o", "--output", choices=("json", "yaml"), default=default(None), help="print the result as JSON or YAML"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="print only the new job's id"
    )
    parser.add_argument("--team", default=default(None), help="submit to this team (default: your current team)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="easyai",
        description="Submit and manage EasyAI training jobs from a terminal, arena-style.",
        epilog=(
            "Start with `easyai login`; every command has --help with an example.\n"
            "Config: ~/.easyai/config.yaml ($EASYAI_CONFIG_DIR); EASYAI_URL, EASYAI_TOKEN and EASYAI_TEAM override it.\n"
            "Exit codes: 0 ok, 1 refused by the portal / unreachable / not logged in, 2 usage."
        ),
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"easyai {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = _command(
        sub,
        "login",
        account.login,
        "log in: exchange your username and password for an API token, saved in the config",
        "easyai login --url https://easyai.example.com --username alice\n"
        'echo "$PASSWORD" | easyai login --url http://localhost:8000 --username alice --password-stdin\n'
        "easyai login --url https://easyai.example.com --sso",
    )
    p.add_argument("--url", help="the portal's address (default: the saved one, $EASYAI_URL, or http://localhost:8000)")
    p.add_argument("--username", "-u", help="your username (asked when not given)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input (one line)")
    p.add_argument(
        "--sso",
        action="store_true",
        help="sign in through the portal in your browser (single sign-on): no password is typed here",
    )

    p = _command(
        sub, "whoami", account.whoami, "show who you are logged in as, on which portal and team", "easyai whoami"
    )
    p.add_argument("-o", "--output", choices=("json", "yaml"))

    p = _command(
        sub,
        "team",
        _team_usage,
        "list your teams, or choose the one commands work in",
        "easyai team list\neasyai team use vision",
    )
    team_sub = p.add_subparsers(title="team commands", metavar="COMMAND")
    q = _command(team_sub, "list", account.team_list, "your teams; * marks the current one", "easyai team list -o json")
    q.add_argument("-o", "--output", choices=("json", "yaml"))
    q = _command(
        team_sub,
        "use",
        account.team_use,
        "work in this team: it is saved in the config, sent as the team of submitted specs and used by `list`",
        "easyai team use vision",
    )
    q.add_argument("slug", help="the team's slug (see `easyai team list`)")

    p = _command(
        sub,
        "submit",
        jobs.submit_file,
        "submit a job from a spec file (-f), or arena-style from flags (submit pytorch|tensorflow|batch)",
        "easyai submit -f job.yaml\n"
        "easyai submit -f job.yaml --dry-run\n"
        "easyai submit --template pytorch-ddp --set workers=2 --set epochs=30\n"
        'easyai submit pytorch --name mnist --image pytorch/pytorch:2.3 --workers 2 --gpus 1 "python train.py"\n'
        "easyai submit pytorch --help",
    )
    p.add_argument("-f", "--file", help="the job spec, YAML or JSON (- reads standard input)")
    p.add_argument("--template", metavar="NAME", help="submit a job template (your team's, else the platform's)")
    p.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="a template field's value; repeat for more"
    )
    _submit_options(p, suppress=False)
    frameworks = p.add_subparsers(title="arena-style (flags instead of a file)", metavar="FRAMEWORK", dest="framework")
    for framework in specs.FRAMEWORKS:
        summary, mapping, example = FRAMEWORK_HELP[framework]
        q = _command(
            frameworks,
            framework,
            jobs.submit_framework,
            f"submit {summary}",
            example,
            description=f"Submit {summary}.\n\n{mapping}\n--cpu, --memory and --gpus are per task. "
            "The command runs under /bin/sh -c in every task; put it in quotes, or after -- when it has options.",
        )
        q.add_argument("--name", required=True, help="the job's name: lowercase letters, digits and '-'")
        q.add_argument("--image", help="the container image (ignored by the local cluster, which runs processes)")
        q.add_argument(
            "--workers", type=_positive, default=1, metavar="N", help="number of workers (default 1; see above)"
        )
        if framework == "tensorflow":
            q.add_argument("--ps", type=_not_negative, default=0, metavar="N", help="number of parameter servers")
            q.add_argument("--chief", action="store_true", help="add one chief task")
        q.add_argument("--gpus", type=_not_negative, default=0, metavar="N", help="GPUs per task (default 0)")
        q.add_argument("--cpu", help="CPUs per task, e.g. 2 or 500m (default: the portal's, 1)")
        q.add_argument("--memory", help="memory per task, e.g. 4Gi (default: the portal's, 2Gi)")
        q.add_argument("--cluster", help="the cluster to run on (default: the portal's default cluster)")
        q.add_argument("--priority", choices=("low", "normal", "high"), help="scheduling priority (default normal)")
        q.add_argument("--experiment", help="group the job under this experiment (created when new)")
        q.add_argument("--env", "-e", action="append", metavar="K=V", help="an environment variable; repeat for more")
        q.add_argument("--working-dir", help="the absolute directory the command starts in")
        q.add_argument("--timeout", help="stop the job after this long, e.g. 2h or 30m")
        q.add_argument("--max-retries", type=_not_negative, help="resubmit a failed job up to N times")
        _submit_options(q, suppress=True)
        q.add_argument("command", nargs="+", help="the command every task runs")
        q.set_defaults(framework=framework)

    p = _command(
        sub,
        "list",
        jobs.list_jobs,
        "list jobs in your current team (newest first)",
        "easyai list\neasyai list -A --state running,pending -o wide\neasyai list --experiment baseline -o json",
        aliases=["ls"],
    )
    p.add_argument("-A", "--all-teams", action="store_true", help="jobs of every team you can see")
    p.add_argument("--state", help="a state, or several separated by commas (queued, pending, running, success, …)")
    p.add_argument("--experiment", help="an experiment's name or id")
    p.add_argument("--owner", help="a username")
    p.add_argument("--framework", help="pytorch, tensorflow, mpi, xgboost, paddle or batch")
    p.add_argument("--cluster", help="a cluster's name")
    p.add_argument("--name", help="part of the job's name, or its id")
    p.add_argument("--ordering", help="created_at, -created_at (default), name, -name, state, -state")
    p.add_argument(
        "--limit", type=_not_negative, default=jobs.DEFAULT_LIST_LIMIT, help="show at most N jobs (0: all; default 100)"
    )
    p.add_argument("-o", "--output", choices=("wide", "json", "yaml"))

    p = _command(
        sub,
        "get",
        jobs.get_job,
        "show a job with its tasks and events",
        "easyai get j-3k9x2m4q\neasyai get mnist -o yaml",
    )
    p.add_argument("job", metavar="JOB", help=JOB_HELP)
    p.add_argument("-o", "--output", choices=("json", "yaml"))

    p = _command(
        sub,
        "logs",
        logs.logs,
        "print a task's log",
        "easyai logs j-3k9x2m4q\neasyai logs j-3k9x2m4q -t worker-1 -f\neasyai logs mnist --tail 50",
        description="Print a task's log (the job's first task, its master or chief, unless -t names one).\n\n"
        "With -f it follows the log live until the task ends, then prints the task's final state on stderr and "
        "exits 0 whatever that state is: use `easyai get` (or `easyai get -o json`) to learn whether it succeeded.",
    )
    p.add_argument("job", metavar="JOB", help=JOB_HELP)
    p.add_argument("-t", "--task", help="the task, e.g. worker-1 (see `easyai get`)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing as the task writes, until it ends")
    p.add_argument("--tail", type=int, default=-1, metavar="N", help="only the last N lines (then follow with -f)")

    for name, handler, verb, example in (
        ("stop", jobs.stop_job, "stop a job (its tasks are killed; the record stays)", "easyai stop j-3k9x2m4q"),
        (
            "delete",
            jobs.delete_job,
            "delete a job from lists (stopping it first when it still runs)",
            "easyai delete j-3k9x2m4q",
        ),
        ("rerun", jobs.rerun_job, "submit a new job from a job's spec", "easyai rerun j-3k9x2m4q"),
        (
            "release",
            jobs.release_job,
            "end the hold of a job's failed task now (its spec's debug.keep_failed or debug.pause_on_failure)",
            "easyai release j-3k9x2m4q",
        ),
    ):
        p = _command(sub, name, handler, verb, example)
        p.add_argument("job", metavar="JOB", help=JOB_HELP)
        if name == "rerun":
            p.add_argument("-o", "--output", choices=("json", "yaml"))
            p.add_argument("-q", "--quiet", action="store_true", help="print only the new job's id")

    p = _command(
        sub,
        "exec",
        shell.exec_,
        "open a shell in a running task, or run a command there",
        "easyai exec j-3k9x2m4q                       # an interactive shell in the first task\n"
        "easyai exec j-3k9x2m4q -t worker-1 -- nvidia-smi\n"
        "easyai exec j-3k9x2m4q -- ls /model_dir > files.txt\n"
        "easyai exec j-3k9x2m4q < check.sh",
        description="Open a shell in a running task (the job's first task unless -t names one).\n\n"
        "On a terminal the shell is interactive (raw mode; window size changes are passed on). "
        "Without a terminal, CMD runs under /bin/sh -c and only its output is printed; without CMD, what standard "
        "input pipes in is run as one sh script (the task's image needs base64 for that). Either way easyai exits "
        "with the remote exit code.",
    )
    p.add_argument("job", metavar="JOB", help=JOB_HELP)
    p.add_argument("-t", "--task", help="the task, e.g. worker-1")
    p.add_argument("command", nargs="*", metavar="-- CMD", help="a command to run instead of an interactive shell")

    ssh.register(sub, _command)  # ssh-key, ssh, ssh-proxy, ssh-config

    p = _command(
        sub,
        "download",
        files.download,
        "download a job's outputs (model_dir, summary_dir/<task>, log_dir, share_dir)",
        "easyai download j-3k9x2m4q                    # list the job's outputs\n"
        "easyai download j-3k9x2m4q model_dir -o ./out # ./out/model_dir/...\n"
        "easyai download j-3k9x2m4q model_dir ckpt/final.pt -o .\n"
        "easyai download j-3k9x2m4q summary_dir worker-0 --zip\n"
        "easyai download --from data mnist -o .         # ./mnist/... from your data",
        description="Download a job's outputs. OUTPUT[/PATH] is saved under DIR by its last name: a folder with "
        "everything in it, or one file. Without OUTPUT, lists the job's outputs. With --from SPACE, JOB is a path "
        "in that space instead (your data, or a workspace).",
    )
    p.add_argument("job", metavar="JOB", help=JOB_HELP + "; with --from, a path in that space")
    p.add_argument("--from", dest="space", choices=files.WORKSPACES, help="download from your data or a workspace")
    p.add_argument(
        "output_name", nargs="?", metavar="OUTPUT", choices=(*files.OUTPUTS, None), help=", ".join(files.OUTPUTS)
    )
    p.add_argument("path", nargs="?", metavar="PATH", help="a file or folder inside the output")
    p.add_argument("-o", "--output-dir", dest="dest", default=".", metavar="DIR", help="where to save (default: .)")
    p.add_argument("--zip", action="store_true", help="save a folder as one zip archive instead")
    p.add_argument("--format", choices=("json", "yaml"), help="print the outputs list as JSON or YAML")

    p = _command(
        sub,
        "upload",
        files.upload,
        "upload a file or folder into your personal workspace (tasks see it under /workspace/personal)",
        "easyai upload train.py                    # -> personal:train.py\n"
        "easyai upload data.csv datasets/          # -> personal:datasets/data.csv\n"
        "easyai upload ./images datasets           # -> personal:datasets/images/...",
    )
    p.add_argument("file", metavar="FILE", help="a file, or a folder to upload with everything in it")
    p.add_argument("dest", nargs="?", metavar="DEST", help="where in the workspace (a folder when it ends with /)")
    p.add_argument("--public", action="store_true", help="into the public workspace, shared by every user")
    p.add_argument(
        "--to", choices=files.WORKSPACES, help="personal (default), public, or data: your data, $data_dir of your jobs"
    )
    p.add_argument("--format", choices=("json", "yaml"), help="print what was uploaded as JSON or YAML")
    p.add_argument("--resume", action="store_true", help="go on with an interrupted upload of a large file")
    p.add_argument(
        "--resumable-above",
        type=int,
        metavar="BYTES",
        help="send files above this in resumable chunks (default: $EASYAI_RESUMABLE_ABOVE or 8 MiB)",
    )

    _model_commands(sub)
    _serve_commands(sub)
    _app_commands(sub)
    _usage_commands(sub)
    pipelines.add_commands(sub, _command)
    datasets.add_commands(sub, _command)
    return parser


MODEL_HELP = "the model's name in your current team (or TEAM/NAME)"
SERVICE_HELP = "the service's name in your current team (or TEAM/NAME)"


def _team_option(parser: argparse.ArgumentParser, *, listing: bool = False, output: bool = True) -> None:
    if listing:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--team", help="this team's (default: your current team)")
        group.add_argument("-A", "--all-teams", action="store_true", help="of every team you can see")
    else:
        parser.add_argument("--team", help="the team the name is in (default: your current team)")
    if output:
        parser.add_argument("-o", "--output", choices=("json", "yaml"), help="print the result as JSON or YAML")


def _model_commands(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub,
        "model",
        _model_usage,
        "the model registry: push or register versions, alias them, pull them",
        "easyai model push ./iris --name iris --format sklearn\n"
        "easyai model get iris\n"
        "easyai model alias iris production 2\n"
        "easyai model pull iris@production -o ./iris-prod",
    )
    group = p.add_subparsers(title="model commands", metavar="COMMAND")

    q = _command(
        group,
        "list",
        models.model_list,
        "your team's registered models",
        "easyai model list\neasyai model list -A",
        aliases=["ls"],
    )
    _team_option(q, listing=True)

    q = _command(
        group,
        "get",
        models.model_get,
        "show a model: its versions with their metrics side by side, its aliases and their history",
        "easyai model get iris\neasyai model get iris --version 2      # its files, digest and lineage",
    )
    q.add_argument("name", metavar="NAME", help=MODEL_HELP)
    q.add_argument("--version", type=_positive, metavar="N", help="one version: its files, digest and lineage")
    _team_option(q)

    q = _command(
        group,
        "register",
        models.model_register,
        "register a job's model folder as the model's next version (the model is made on first use)",
        "easyai model register j-3k9x2m4q --name iris --format sklearn\n"
        "easyai model register mnist --name mnist --path model_dir/best --format torchscript --metrics '{\"acc\": 0.98}'",
        description="Register a job's model folder as the next version of a model of the job's team (made on first "
        "use). The files are copied into the registry, with their sha256 digests and the job's lineage.",
    )
    q.add_argument("job", metavar="JOB", help=JOB_HELP)
    q.add_argument("--name", required=True, help="the model's name: lowercase letters, digits and '-'")
    q.add_argument("--path", default="model_dir", help="model_dir (default) or a folder below it, e.g. model_dir/best")
    _version_options(q)
    q.add_argument("--team", help="the job's team (default: the job's own)")
    q.add_argument("-o", "--output", choices=("json", "yaml"), help="print the new version as JSON or YAML")

    q = _command(
        group,
        "push",
        models.model_push,
        "push a local folder as the model's next version (the model is made on first use)",
        "easyai model push ./iris --name iris --format sklearn --metrics '{\"accuracy\": 0.97}'",
        description="Push a local folder as the next version of a model (made on first use): it is zipped into a "
        "temporary file and streamed to the portal, which checks it holds a model of the format.",
    )
    q.add_argument("dir", metavar="DIR", help="the folder holding the model's files")
    q.add_argument("--name", required=True, help="the model's name (or TEAM/NAME)")
    _version_options(q)
    _team_option(q)

    q = _command(
        group,
        "pull",
        models.model_pull,
        "download a version's files into a folder",
        "easyai model pull iris                   # the latest version, into ./iris-N\n"
        "easyai model pull iris:2 -o ./model\n"
        "easyai model pull iris@production -o ./model",
        description="Download a version's files into DIR (default ./NAME-VERSION). Every file is checked against "
        "the version's size and sha256 before it is put in place; same-named files in DIR are replaced.",
    )
    q.add_argument("ref", metavar="NAME[:VERSION|@ALIAS]", help="the model, and the version or alias (default: latest)")
    q.add_argument("-o", "--output-dir", dest="dest", metavar="DIR", help="where to put the files")
    q.add_argument("--team", help="the team the model is in (default: your current team)")

    q = _command(
        group,
        "alias",
        models.model_alias,
        "point an alias (production, staging, ...) at a version, or delete it; services following it move too",
        "easyai model alias iris production 2\neasyai model alias iris staging --delete",
    )
    q.add_argument("name", metavar="NAME", help=MODEL_HELP)
    q.add_argument("alias", metavar="ALIAS", help="the alias: lowercase letters, digits and '-'")
    q.add_argument("version", metavar="VERSION", nargs="?", type=_positive, help="the version it points at")
    q.add_argument("--delete", action="store_true", help="delete the alias instead")
    q.add_argument("--team", help="the team the model is in (default: your current team)")

    q = _command(
        group,
        "delete",
        models.model_delete,
        "delete a version, or the model with every version (refused while a service uses them)",
        "easyai model delete iris --version 1\neasyai model delete iris",
    )
    q.add_argument("name", metavar="NAME", help=MODEL_HELP)
    q.add_argument("--version", type=_positive, metavar="N", help="only this version")
    q.add_argument("--team", help="the team the model is in (default: your current team)")


def _version_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        required=True,
        help="sklearn, xgboost, onnx, torchscript, pytorch, tensorflow, huggingface or custom",
    )
    parser.add_argument(
        "--metrics",
        metavar="JSON",
        help="names to numbers, e.g. '{\"accuracy\": 0.97}' (@FILE reads a "
        "file); a metrics.json in the folder counts too, these win",
    )
    parser.add_argument("--description", help="a line about this version")


def _serve_commands(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub,
        "serve",
        _serve_usage,
        "inference services: serve a model's version, split traffic to a canary, promote, roll back",
        "easyai serve create iris --model iris --alias production\n"
        "easyai serve get iris\n"
        "easyai serve canary iris --version 3 --percent 10\n"
        "easyai serve predict iris --data '{\"instances\": [[5.1, 3.5, 1.4, 0.2]]}'",
    )
    group = p.add_subparsers(title="serve commands", metavar="COMMAND")

    q = _command(
        group,
        "create",
        models.serve_create,
        "serve a model: its latest version, a fixed one (--version) or the one an alias points at (--alias)",
        "easyai serve create iris --model iris --version 2\n"
        "easyai serve create iris-prod --model iris --alias production --cpu 2 --memory 4Gi --max-replicas 3",
    )
    q.add_argument("name", metavar="NAME", help="the service's name: lowercase letters, digits and '-'")
    q.add_argument("--model", required=True, help="the model's name in the team")
    which = q.add_mutually_exclusive_group()
    which.add_argument("--version", type=_positive, metavar="N", help="serve this version (default: the latest)")
    which.add_argument("--alias", help="follow this alias: the service moves when the alias does")
    q.add_argument("--cluster", help="the cluster to serve on (default: the portal's default cluster)")
    q.add_argument("--cpu", default="1", help="CPUs per replica, e.g. 1 or 500m (default 1)")
    q.add_argument("--memory", default="2Gi", help="memory per replica (default 2Gi)")
    q.add_argument("--gpu", type=_not_negative, default=0, metavar="N", help="GPUs per replica (default 0)")
    q.add_argument("--min-replicas", type=_not_negative, default=1, metavar="N", help="(default 1)")
    q.add_argument("--max-replicas", type=_positive, default=1, metavar="N", help="(default 1)")
    q.add_argument("--public", action="store_true", help="anyone may call it without a token (team admins only)")
    _team_option(q)

    q = _command(
        group, "list", models.serve_list, "your team's inference services", "easyai serve list -A", aliases=["ls"]
    )
    _team_option(q, listing=True)

    q = _command(
        group,
        "get",
        models.serve_get,
        "show a service: state, URL, traffic split, revisions, calls and latency, the gRPC address",
        "easyai serve get iris\neasyai serve get iris -o json",
    )
    q.add_argument("name", metavar="NAME", help=SERVICE_HELP)
    _team_option(q)

    q = _command(
        group,
        "canary",
        models.serve_canary,
        "start a version as a canary that takes a share of the calls once it answers",
        "easyai serve canary iris --version 3 --percent 10",
    )
    q.add_argument("name", metavar="NAME", help=SERVICE_HELP)
    q.add_argument("--version", type=_positive, required=True, metavar="N", help="the version to try")
    q.add_argument("--percent", type=_not_negative, required=True, metavar="P", help="its share of the calls, 0-100")
    _team_option(q)

    for name, handler, verb, example in (
        (
            "promote",
            models.serve_promote,
            "the ready canary takes every call (an alias followed moves to it)",
            "easyai serve promote iris",
        ),
        (
            "rollback",
            models.serve_rollback,
            "drop the canary; without one, serve the version served before",
            "easyai serve rollback iris",
        ),
    ):
        q = _command(group, name, handler, verb, example)
        q.add_argument("name", metavar="NAME", help=SERVICE_HELP)
        _team_option(q)

    q = _command(
        group,
        "set",
        models.serve_set,
        "change what a service serves (a version, or an alias to follow) or its resources",
        "easyai serve set iris --version 3\neasyai serve set iris --alias production\neasyai serve set iris --cpu 2",
        description="Change what a service serves or how. A new revision starts and takes the calls only once it "
        "answers; until then the old one serves.",
    )
    q.add_argument("name", metavar="NAME", help=SERVICE_HELP)
    which = q.add_mutually_exclusive_group()
    which.add_argument("--version", type=_positive, metavar="N", help="serve this version")
    which.add_argument("--alias", help="follow this alias")
    q.add_argument("--cpu", help="CPUs per replica")
    q.add_argument("--memory", help="memory per replica")
    q.add_argument("--gpu", type=_not_negative, metavar="N", help="GPUs per replica")
    q.add_argument("--min-replicas", type=_not_negative, metavar="N")
    q.add_argument("--max-replicas", type=_positive, metavar="N")
    _team_option(q)

    q = _command(
        group,
        "predict",
        models.serve_predict,
        "call a service once through the portal and print its answer",
        "easyai serve predict iris --data '{\"instances\": [[5.1, 3.5, 1.4, 0.2]]}'\n"
        "easyai serve predict iris --v2 --data @request.json",
        description="Call a service once through the portal, as its URL would be called, and print the model "
        "server's answer (the revision that answered and the latency go to stderr). Exits 1 when the model server "
        "answered with an error.",
    )
    q.add_argument("name", metavar="NAME", help=SERVICE_HELP)
    q.add_argument(
        "--data",
        "-d",
        required=True,
        metavar="JSON",
        help="the request body: JSON text, @FILE, or - for standard input",
    )
    q.add_argument("--v2", action="store_true", help='the V2 (Open Inference) protocol: {"inputs": [...]}')
    _team_option(q)

    q = _command(group, "delete", models.serve_delete, "stop and delete a service", "easyai serve delete iris")
    q.add_argument("name", metavar="NAME", help=SERVICE_HELP)
    q.add_argument("--team", help="the team the service is in (default: your current team)")


APP_HELP = "the app's name in your current team (or TEAM/NAME)"


def _app_settings(parser: argparse.ArgumentParser) -> None:
    """The settings `app deploy` and `app set` share; none has a default, so only what is given is sent."""
    parser.add_argument("--cpu", help="CPUs, e.g. 1 or 500m (the portal's default: 1)")
    parser.add_argument("--memory", help="memory, e.g. 2Gi (the portal's default: 2Gi)")
    parser.add_argument("--gpu", type=_not_negative, metavar="N", help="GPUs (default 0)")
    parser.add_argument("--image", help="the container image (default: the portal's app image)")
    parser.add_argument(
        "--env", "-e", action="append", metavar="K=V", help="an environment variable; repeat for more (others kept)"
    )
    parser.add_argument(
        "--secret", action="append", metavar="K=V", help="a secret variable: its value is never shown again; repeat"
    )
    parser.add_argument(
        "--visibility",
        choices=("team", "shared", "public"),
        help="who may open it: the team (default), the team and the users named with --share, or anyone",
    )
    parser.add_argument(
        "--share",
        action="append",
        metavar="USER",
        help="share it with this user (repeat, or USER,USER); "
        "implies --visibility shared; the list given replaces the one before",
    )
    parser.add_argument(
        "--idle-minutes", type=_not_negative, metavar="N", help="sleep after N minutes without a request (0: never)"
    )
    parser.add_argument("--description", help="a line about the app")


def _app_commands(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub,
        "app",
        _app_usage,
        "web apps (Streamlit, Gradio or a custom server): deploy a folder, watch it, change it",
        "easyai app deploy ./dashboard --kind streamlit --entry app.py --wait\n"
        "easyai app list\n"
        "easyai app logs dashboard -f\n"
        "easyai app set dashboard --secret API_KEY=... --visibility public",
    )
    group = p.add_subparsers(title="app commands", metavar="COMMAND")

    q = _command(
        group,
        "deploy",
        webapps.app_deploy,
        "deploy a local folder as an app: create it, or publish a new revision of it",
        "easyai app deploy ./dashboard --kind streamlit                  # entry app.py, named dashboard\n"
        "easyai app deploy ./demo --kind gradio --entry main.py --name demo --memory 4Gi --wait\n"
        "easyai app deploy ./api --kind custom --command 'python server.py'\n"
        "easyai app deploy ./dashboard                                   # again: revision 2",
        description="Deploy a local folder as an app. The folder is zipped (without .git, __pycache__, .venv and "
        "*.pyc; a symbolic link is refused) and uploaded.\n\nA new app is created with it as revision 1 and "
        "started (--kind is then needed; a streamlit or gradio app's --entry defaults to app.py). An app that "
        "exists gets a new revision that replaces the running one (its entry and command kept unless given), "
        "then the settings given are changed.",
    )
    q.add_argument("dir", metavar="DIR", help="the folder holding the app's files")
    q.add_argument("--kind", help="streamlit, gradio or custom (needed when the app is new)")
    q.add_argument("--entry", help="the Python file it runs, in the folder (default for a new app: app.py)")
    q.add_argument("--command", help="a custom app's command: it serves HTTP on $PORT, under $EASYAI_APP_BASE_PATH")
    q.add_argument("--name", help="the app's name (or TEAM/NAME; default: the folder's name, lowercased)")
    q.add_argument("--cluster", help="the cluster it runs on, when it is created (default: the portal's default)")
    _app_settings(q)
    q.add_argument("--wait", action="store_true", help="wait until it answers; exit 1 if it fails")
    q.add_argument("--timeout", type=_positive, default=600, metavar="S", help="how long --wait waits (default 600)")
    _team_option(q)

    q = _command(
        group,
        "list",
        webapps.app_list,
        "your team's apps: state, address, owner, last request",
        "easyai app list\neasyai app list -A",
        aliases=["ls"],
    )
    _team_option(q, listing=True)

    q = _command(
        group,
        "get",
        webapps.app_get,
        "show an app: its state, address, settings (secrets by name only) and revisions",
        "easyai app get dashboard\neasyai app get vision/dashboard -o json",
    )
    q.add_argument("name", metavar="NAME", help=APP_HELP)
    _team_option(q)

    q = _command(
        group,
        "logs",
        webapps.app_logs,
        "print the log of the app's current run (its task app-0)",
        "easyai app logs dashboard\neasyai app logs dashboard -f --tail 50",
        description="Print the log of the app's current run (its job's one task, app-0). With -f it follows the "
        "log live until the run ends.",
    )
    q.add_argument("name", metavar="NAME", help=APP_HELP)
    q.add_argument("-f", "--follow", action="store_true", help="keep printing as the app writes, until its run ends")
    q.add_argument("--tail", type=int, default=-1, metavar="N", help="only the last N lines (then follow with -f)")
    q.add_argument("--team", help="the team the name is in (default: your current team)")

    for name, handler, verb in (
        ("start", webapps.app_start, "start a stopped, sleeping or failed app on its current revision"),
        ("stop", webapps.app_stop, "stop an app until it is started again (a visit does not wake it)"),
        ("restart", webapps.app_restart, "run the app's current revision afresh"),
    ):
        q = _command(group, name, handler, verb, f"easyai app {name} dashboard")
        q.add_argument("name", metavar="NAME", help=APP_HELP)
        _team_option(q)

    q = _command(
        group,
        "set",
        webapps.app_set,
        "change an app's settings; a running app restarts when its resources, env or secrets change",
        "easyai app set dashboard --env MODE=demo --secret API_KEY=s3cret\n"
        "easyai app set dashboard --unset-secret API_KEY --unset-env MODE\n"
        "easyai app set dashboard --visibility shared --share bob --share carol\n"
        "easyai app set dashboard --idle-minutes 0 --cpu 2 --memory 4Gi",
    )
    q.add_argument("name", metavar="NAME", help=APP_HELP)
    _app_settings(q)
    q.add_argument("--unset-env", action="append", metavar="NAME", help="remove an environment variable; repeat")
    q.add_argument("--unset-secret", action="append", metavar="NAME", help="remove a secret; repeat")
    _team_option(q)

    q = _command(
        group,
        "delete",
        webapps.app_delete,
        "stop and delete an app with its revisions (asks first unless --yes)",
        "easyai app delete dashboard\neasyai app delete vision/dashboard --yes",
    )
    q.add_argument("name", metavar="NAME", help=APP_HELP)
    q.add_argument("-y", "--yes", action="store_true", help="do not ask")
    q.add_argument("--team", help="the team the name is in (default: your current team)")


def _usage_commands(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub,
        "usage",
        usage.usage,
        "what your team's jobs used and cost, by day, month, user or job",
        "easyai usage                                 # the last 30 days, by day\n"
        "easyai usage --from 2026-01-01 --to 2026-03-31 --group-by user\n"
        "easyai usage --group-by month -o csv > usage.csv\n"
        "easyai usage -A --group-by job -o json",
        description="What the jobs of your team (or of every team you may see, with -A) used and cost over a range "
        "of days, by the day each job started: core-, GiB- and GPU-hours used and requested, efficiency (used ÷ "
        "requested) and cost (Σ interval × max(requested, used) × the cluster's price; GPUs by request).",
    )
    _team_option(p, listing=True, output=False)
    p.add_argument("--from", dest="from_", metavar="YYYY-MM-DD", help="the first day (default: 30 days back)")
    p.add_argument("--to", metavar="YYYY-MM-DD", help="the last day (default: today)")
    p.add_argument("--group-by", choices=("day", "month", "user", "job"), help="rows by (default: day)")
    p.add_argument("-o", "--output", choices=("table", "csv", "json", "yaml"), default="table")

    p = _command(
        sub,
        "top",
        usage.top,
        "running tasks with their live CPU, memory and GPU, like arena top job",
        "easyai top\neasyai top --watch 5\neasyai top -A -o json",
        description="Each running task of your team's running jobs (or every team's you may see, with -A): what it "
        "uses now (its newest sample, from the last 5 minutes) against what it requested.",
    )
    _team_option(p, listing=True, output=False)
    p.add_argument("--watch", type=_positive, metavar="N", help="show it again every N seconds until Ctrl-C")
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")


def _team_usage(ctx: Context, args: argparse.Namespace) -> int:
    raise CLIError("say what to do with teams: easyai team list | easyai team use SLUG", code=2)


def _model_usage(ctx: Context, args: argparse.Namespace) -> int:
    raise CLIError(
        "say what to do with models: easyai model list | get | register | push | pull | alias | delete "
        "(see easyai model --help)",
        code=2,
    )


def _serve_usage(ctx: Context, args: argparse.Namespace) -> int:
    raise CLIError(
        "say what to do with services: easyai serve create | list | get | canary | promote | rollback | "
        "set | predict | delete (see easyai serve --help)",
        code=2,
    )


def _app_usage(ctx: Context, args: argparse.Namespace) -> int:
    raise CLIError(
        "say what to do with apps: easyai app deploy | list | get | logs | start | stop | restart | set | delete "
        "(see easyai app --help)",
        code=2,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    if handler is jobs.submit_file and args.file and getattr(args, "template", None):
        print("easyai submit: give either -f FILE or --template NAME, not both", file=sys.stderr)
        return 2
    if handler is jobs.submit_file and not args.file and not getattr(args, "template", None):
        print(
            "easyai submit: give -f FILE, --template NAME, or a framework (pytorch, tensorflow, batch); "
            "see easyai submit --help",
            file=sys.stderr,
        )
        return 2
    if getattr(args, "framework", None) and getattr(args, "file", None) and handler is jobs.submit_framework:
        print("easyai submit: give either -f FILE or a framework with flags, not both", file=sys.stderr)
        return 2
    if handler is shell.exec_ and args.command and args.command[0] == "--":
        args.command = args.command[1:]
    try:
        ctx = Context(config_module.load())
        return handler(ctx, args)
    except CLIError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return exc.code
    except config_module.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `easyai list | head`: the reader left. Say nothing, as other tools do, and point stdout at
        # /dev/null so the interpreter's final flush does not fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        # A local file or folder the commands above did not foresee: one line, never a traceback.
        print(_os_error_line(exc), file=sys.stderr)
        return 1


def _os_error_line(exc: OSError) -> str:
    paths = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{paths}: {reason}" if paths else reason


if __name__ == "__main__":
    sys.exit(main())
