"""Latentgraph command line: the composition root.

    python main.py                      # serve (ComfyUI-compatible API + editor) on 127.0.0.1:8188
    python main.py run WORKFLOW.json    # run headless, print output files
    python main.py validate WORKFLOW    # exit 0 when valid, 2 with readable lines otherwise
    python main.py nodes [--json]       # node palette / object_info

This is the only place that wires engine, nodes, ldm and ui together; ldm and ui are imported
lazily so `validate`/`nodes` stay fast. Extra node modules: LATENTGRAPH_EXTRA_NODES=mod[,mod]
(each module's `register(registry)` is called if present); LATENTGRAPH_BUILTIN_NODES=0 skips
nodes/ (tests use this to stay independent of torch).
"""
from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.executor import Executor
    from engine.paths import Paths
    from engine.queue import JobQueue

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.overrides import SetError, apply_sets, sync_native_widgets  # noqa: E402 (after the path)

EXIT_OK, EXIT_RUNTIME, EXIT_INVALID = 0, 1, 2


def _add_path_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models-dir", default=str(ROOT / "models"), metavar="DIR",
                   help="checkpoints/, loras/, vae/, ... (a ComfyUI models folder works; default: %(default)s)")
    p.add_argument("--input-dir", "--input-directory", default=str(ROOT / "input"), metavar="DIR",
                   help="images for Load Image (default: %(default)s)")
    p.add_argument("--output-dir", "--output-directory", default=str(ROOT / "output"), metavar="DIR",
                   help="saved images (default: %(default)s)")
    p.add_argument("--temp-dir", "--temp-directory", default=str(ROOT / "temp"), metavar="DIR",
                   help="previews (default: %(default)s)")
    p.add_argument("--user-dir", "--user-directory", default=str(ROOT / "user"), metavar="DIR",
                   help="job queue + history database (default: %(default)s)")
    p.add_argument("--base-directory", default=None, metavar="DIR",
                   help="ComfyUI's flag: models/, input/, output/, temp/, user/, custom_nodes/ under DIR "
                        "unless given one by one")
    p.add_argument("--disable-all-custom-nodes", action="store_true", help="load no plugins")
    p.add_argument("--extra-model-paths-config", action="append", default=[], metavar="YAML",
                   help="ComfyUI extra_model_paths.yaml (may be repeated)")
    p.add_argument("--custom-nodes", default=str(ROOT / "custom_nodes"), metavar="DIR",
                   help="folder of node plugins (each module/package loaded in isolation)")
    p.add_argument("--plugin-timeout", type=_seconds, default=60.0, metavar="SECONDS",
                   help="each plugin is first imported in a child process; one that takes longer, exits "
                        "or crashes it is reported and skipped (0 = no probe; default: %(default)s)")
    p.add_argument("--cpu", action="store_true", help="run models on the CPU")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda:1")
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--cache-classic", action="store_true",
                       help="keep only the current prompt's outputs (ComfyUI's default cache)")
    cache.add_argument("--cache-lru", type=int, default=None, metavar="N",
                       help="keep outputs of recent prompts, at least N entries (ComfyUI's LRU cache)")
    cache.add_argument("--cache-none", action="store_true", help="keep no outputs between prompts")


def _seconds(text: str) -> float:
    """argparse type: a finite number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def _port(text: str) -> int:
    """argparse type: a TCP port number."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def _add_memory_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-memory", type=_size, default=None, metavar="SIZE",
                   help="most memory one node may allocate for its work, e.g. 8G, 512M (0 = no limit; "
                        "free RAM/VRAM is always checked); bigger requests fail with a clear error")


def _size(text: str) -> int | None:
    """argparse type of --max-memory: bytes, or None for no budget."""
    from ldm.memory import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


SERVE_SECURITY = """\
Security:
  By default the server listens on 127.0.0.1 and answers only Host names of this machine's
  loopback (localhost, 127.0.0.1, ::1), so neither other machines nor a web page using DNS
  rebinding can reach it. Cross-site requests (an Origin naming another site) are refused.
  --listen on any other address requires --auth-token TOKEN (or --allow-no-auth, which prints a
  warning at start). Bound publicly, the server answers Host names that are an IP address, this
  machine's host name, the --listen address or listed in --allowed-hosts; others get 403.
  Behind a reverse proxy, add the proxy's public name with --allowed-hosts ('*' answers any
  name: only with --auth-token, or where no browser can be lured to the server)."""


def parse_hosts(text: str) -> list[str]:
    """argparse type of --allowed-hosts: comma-separated names (ui/hosts.py checks them)."""
    return [h.strip() for h in text.split(",") if h.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="latentgraph", description="ComfyUI-compatible node graphs for Stable Diffusion",
        epilog="Without a command: serve. `python main.py COMMAND --help` lists a command's options.")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="start the HTTP/WS API and the editor (default)",
                           epilog=SERVE_SECURITY, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_path_args(serve)
    serve.add_argument("--listen", default="127.0.0.1", nargs="?", const="0.0.0.0", metavar="HOST",
                       help="address to bind (default: %(default)s; 0.0.0.0 = every interface, "
                            "which needs --auth-token or --allow-no-auth)")
    serve.add_argument("--port", type=_port, default=8188, help="default: %(default)s")
    serve.add_argument("--no-editor", action="store_true",
                       help="serve the API only (starts ~9 s faster: no Gradio editor)")
    serve.add_argument("--preview-method", default=None, choices=["none", "auto", "latent2rgb", "taesd"],
                       help="accepted for ComfyUI's command lines; previews stay as each prompt asks "
                            "(extra_data.preview_method)")
    serve.add_argument("--auth-token", default=None, metavar="TOKEN",
                       help="require this token (browser: open /?token=TOKEN once; API: Authorization: Bearer TOKEN)")
    serve.add_argument("--allow-no-auth", action="store_true",
                       help="listen on a non-loopback --listen address without --auth-token (trusted networks only)")
    serve.add_argument("--allowed-hosts", type=parse_hosts, action="extend", default=[], metavar="HOST[,HOST]",
                       help="more names browsers may use in the Host header, e.g. a DNS name or proxy "
                            "name ('*' = any); see the Security note below")
    _add_memory_arg(serve)
    run = sub.add_parser("run", help="run a workflow headless")
    _add_path_args(run)
    run.add_argument("workflow", help=".json (editor, ComfyUI UI or API format) or a .png carrying a workflow")
    run.add_argument("--set", action="append", default=[], metavar="ID_OR_TITLE.input=value",
                     help="override an input (value parsed as JSON, else taken as a string)")
    run.add_argument("--target", action="append", default=None, metavar="ID", help="run only these nodes")
    run.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    _add_memory_arg(run)
    val = sub.add_parser("validate", help="validate a workflow (exit 0 valid, 2 invalid)")
    _add_path_args(val)
    val.add_argument("workflow", help=".json (editor, ComfyUI UI or API format) or a .png carrying a workflow")
    val.add_argument("--set", action="append", default=[], metavar="ID_OR_TITLE.input=value",
                     help="override an input before validating (as for run)")
    val.add_argument("--json", action="store_true", help="print ComfyUI's error body as JSON on stdout")
    nodes = sub.add_parser("nodes", help="list the node palette")
    _add_path_args(nodes)
    nodes.add_argument("--json", action="store_true", help="print /object_info")
    verify = sub.add_parser("verify-models", help="hash every model file and check it (exit 0 all good, 1 problems)")
    _add_path_args(verify)
    verify.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    tiny = sub.add_parser("make-tiny-models", help="write the tiny test models into DIR")
    tiny.add_argument("dir", help="folder to write checkpoints/, loras/, embeddings/ into")
    # train-demo's options are tools/train_demo.py's own (main() forwards them unparsed)
    sub.add_parser("train-demo", add_help=False,
                   help="train the small demo model on this CPU (--out FILE --minutes N; -h for all)")
    return parser


def make_paths(args: argparse.Namespace) -> Any:
    from engine.paths import Paths

    return Paths.from_args(args.models_dir, args.input_dir, args.output_dir, args.temp_dir, args.user_dir,
                           args.extra_model_paths_config or None)


def apply_base_directory(args: argparse.Namespace, argv: list[str]) -> None:
    """ComfyUI's --base-directory: every folder not given explicitly lives under it."""
    base = getattr(args, "base_directory", None)
    if not base:
        return
    given = {a.split("=", 1)[0] for a in argv}
    for dest, flags, sub in (("models_dir", ("--models-dir",), "models"),
                             ("input_dir", ("--input-dir", "--input-directory"), "input"),
                             ("output_dir", ("--output-dir", "--output-directory"), "output"),
                             ("temp_dir", ("--temp-dir", "--temp-directory"), "temp"),
                             ("user_dir", ("--user-dir", "--user-directory"), "user"),
                             ("custom_nodes", ("--custom-nodes",), "custom_nodes")):
        if hasattr(args, dest) and not given & set(flags):
            setattr(args, dest, str(Path(base) / sub))


def custom_node_dirs(args: argparse.Namespace) -> list[str]:
    """--custom-nodes plus the `custom_nodes:` entries of --extra-model-paths-config files
    (relative to each file's folder, as ComfyUI reads them); none with --disable-all-custom-nodes."""
    from engine.paths import parse_extra_model_paths

    if getattr(args, "disable_all_custom_nodes", False):
        return []
    dirs = [args.custom_nodes]
    for yml in args.extra_model_paths_config or []:
        dirs += parse_extra_model_paths(yml).get("custom_nodes", [])
    return dirs


def cache_options(args: argparse.Namespace) -> dict:
    """Executor cache mode from --cache-classic / --cache-lru N / --cache-none (default: budget)."""
    if getattr(args, "cache_none", False):
        return {"cache_mode": "none"}
    if getattr(args, "cache_classic", False):
        return {"cache_mode": "classic"}
    if getattr(args, "cache_lru", None) is not None:
        return {"cache_mode": "lru", "cache_lru_size": args.cache_lru}
    return {}


def plugin_probe(args: argparse.Namespace) -> Any:
    """The child-process import probe for --custom-nodes plugins (None with --plugin-timeout 0)."""
    from nodes.plugin_probe import PluginProbe

    return PluginProbe.for_user_dir(args.user_dir, args.plugin_timeout)


def load_nodes(custom_dir: str | list[str] | None, probe: Any = None) -> list[dict]:
    """Fills nodes.registry.REGISTRY: builtin nodes/, custom_dir plugins, LATENTGRAPH_EXTRA_NODES."""
    from nodes.plugins import load_all
    from nodes.registry import REGISTRY

    builtin = os.environ.get("LATENTGRAPH_BUILTIN_NODES", "1") != "0"
    errors = load_all(custom_dir, builtin=builtin, probe=probe)
    for name in filter(None, (m.strip() for m in os.environ.get("LATENTGRAPH_EXTRA_NODES", "").split(","))):
        try:
            module = importlib.import_module(name)
            if callable(getattr(module, "register", None)):
                module.register(REGISTRY)
        except Exception as exc:
            errors.append({"module": name, "error": f"{type(exc).__name__}: {exc}"})
    return errors


class DeviceError(ValueError):
    """--device names no usable torch device."""


def _setup_device(args: argparse.Namespace) -> None:
    if getattr(args, "cpu", False) or getattr(args, "device", None):
        import torch

        from ldm.devices import set_device

        name = "cpu" if args.cpu else args.device
        try:
            kind = torch.device(name).type
        except RuntimeError:
            raise DeviceError(f"--device {name!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps)") from None
        available = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}
        if kind in available and not available[kind]():
            raise DeviceError(f"--device {name}: {kind} is not available on this machine (use --cpu)")
        set_device(name)


def _eprint(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def load_workflow(path: str) -> tuple[dict, dict | None]:
    """(canonical prompt, editor/UI workflow or None) of a .json/.png file (native, ComfyUI API/UI,
    PNG chunks, A1111)."""
    from engine.formats import load_any
    from nodes.registry import REGISTRY

    loaded = load_any(path, REGISTRY)
    for warning in getattr(loaded, "warnings", None) or []:
        _eprint(f"warning: {warning}")
    return loaded.prompt, loaded.workflow


def _prepare(args: argparse.Namespace) -> tuple[dict, Any, list[dict]]:
    from nodes.registry import REGISTRY

    errors = load_nodes(custom_node_dirs(args), plugin_probe(args))
    for err in errors:
        _eprint(f"warning: node module {err['module']} failed to load: {err['error']}")
    prompt, workflow = load_workflow(args.workflow)
    prompt = apply_sets(prompt, list(args.set or []), REGISTRY)
    args.workflow_doc = sync_native_widgets(workflow, prompt)
    return prompt, make_paths(args), errors


def _load_error_text(path: str, exc: Exception) -> str:
    """One readable line for a workflow that cannot be loaded (or a bad --set): no traceback."""
    if isinstance(exc, SetError):
        return f"error: {exc}"
    return f"error: cannot load {path}: {exc}"  # FormatError's reason is one line (engine/formats)


def _choice_hints(body: dict, args: argparse.Namespace) -> list[str]:
    """For a value not in its list (typically a model or image file that is not there): how to fix it."""
    hints = []
    for nid, ne in (body.get("node_errors") or {}).items():
        for err in ne.get("errors") or []:
            info = err.get("extra_info") or {}
            config = info.get("input_config") or [None]
            name, choices = info.get("input_name"), config[0]
            if err.get("type") != "value_not_in_list" or not name or not isinstance(choices, list):
                continue
            pick = f'pick one with --set "{nid}.{name}={choices[0]}"' if choices else "no file is available yet"
            hints.append(f"hint: node {nid} '{name}': {pick}, or put '{info.get('received_value')}' where it is "
                         f"looked for (--models-dir {args.models_dir}, --input-dir {args.input_dir})")
    return hints


def cmd_validate(args: argparse.Namespace) -> int:
    from engine.graph import validate
    from nodes.registry import REGISTRY

    try:
        prompt, paths, _ = _prepare(args)
    except Exception as exc:
        _eprint(_load_error_text(args.workflow, exc))
        return EXIT_INVALID
    val = validate(prompt, REGISTRY, paths)
    if args.json:
        print(json.dumps({"ok": val.ok and not val.node_errors, "outputs": val.outputs, "warnings": val.warnings,
                          **val.response_body(), "lines": val.lines()}, indent=2))
    else:
        for line in val.warnings:
            _eprint(f"warning: {line}")
        for line in val.lines():
            print(line)
        for line in _choice_hints(val.response_body(), args):
            _eprint(line)
        if val.ok and not val.node_errors:
            print(f"ok: {len(val.prompt)} nodes, outputs {', '.join(val.outputs)}")
    return EXIT_OK if val.ok and not val.node_errors else EXIT_INVALID


def cmd_nodes(args: argparse.Namespace) -> int:
    from nodes.registry import REGISTRY

    errors = load_nodes(custom_node_dirs(args), plugin_probe(args))
    paths = make_paths(args)
    if args.json:
        print(json.dumps(REGISTRY.object_info(paths), indent=1))
    else:
        for nd in sorted(REGISTRY.all(), key=lambda n: (n.category, n.class_type)):
            ins = ", ".join(f"{s.name}:{s.type}" + ("?" if s.optional else "") for s in nd.inputs)
            outs = ", ".join(o.label for o in nd.outputs) or ("(output)" if nd.output_node else "-")
            print(f"{nd.category:<24} {nd.class_type:<28} ({ins}) -> {outs}")
    for err in errors:
        _eprint(f"warning: node module {err['module']} failed to load: {err['error']}")
    return EXIT_OK


class _Bars:
    """tqdm bars on a TTY: one over the prompt's nodes, one per node's progress ticks."""

    def __init__(self, prompt: dict, enabled: bool) -> None:
        from tqdm import tqdm

        self.tqdm, self.enabled, self.prompt = tqdm, enabled, prompt
        self.outer = tqdm(total=len(prompt), desc="nodes", unit="node", disable=not enabled, leave=False)
        self.inner = None

    def _close_inner(self) -> None:
        if self.inner is not None:
            self.inner.close()
            self.inner = None

    def __call__(self, event: Any) -> None:
        from engine.events import ExecutionCached, ExecutionWarning, Executing, Progress

        if isinstance(event, ExecutionWarning):
            (self.tqdm.write if self.enabled else _eprint)(f"warning: {event.message}")
        elif isinstance(event, ExecutionCached):
            self.outer.update(len(event.nodes))
        elif isinstance(event, Executing):
            self._close_inner()
            if event.node is None:
                self.outer.close()
                return
            node = self.prompt.get(event.node, {})
            self.outer.set_description(f"{event.node} {node.get('class_type', '')}")
            self.outer.update(1)
        elif isinstance(event, Progress) and self.enabled:
            if self.inner is None:
                self.inner = self.tqdm(total=event.max, desc=f"  node {event.node}", leave=False)
            self.inner.n = event.value
            self.inner.refresh()


def _output_files(result: Any, paths: Any) -> list[str]:
    """Paths of the files listed in UI outputs ({filename, subfolder, type} entries)."""
    from engine.paths import safe_join

    found = []
    for ui in result.outputs.values():
        for items in ui.values() if isinstance(ui, dict) else []:
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and "filename" in item:
                    try:
                        root = paths.type_dir(item.get("type", "output"))
                        found.append(str(safe_join(root, item.get("subfolder") or "", item["filename"])))
                    except Exception:
                        continue
    return found


def _error_text(err: dict) -> str:
    """`node 3 (KSampler) failed: ValueError: ...` plus the inputs it was given."""
    head = f"node {err.get('node_id')} ({err.get('node_type')})"
    text = f"error: {head} failed: {err.get('exception_type')}: {err.get('exception_message')}"
    inputs = err.get("current_inputs") or {}
    if inputs:
        text += "\n  inputs: " + ", ".join(f"{k}={str(v)[:60]}" for k, v in inputs.items())
    return text


def _execute_interruptible(executor: Any, prompt: dict, targets: Any, emit: Any,
                           extra_data: dict | None = None) -> Any:
    """Runs in a worker thread so Ctrl-C becomes a clean interrupt instead of a traceback."""
    interrupt, done, box = threading.Event(), threading.Event(), {}

    def work() -> None:
        try:
            box["result"] = executor.execute(prompt, prompt_id=str(uuid.uuid4()), targets=targets,
                                             emit=emit, interrupt=interrupt, extra_data=extra_data)
        finally:
            done.set()

    # Waiting on an Event, not Thread.join: a Ctrl-C inside join() can corrupt the thread's state.
    threading.Thread(target=work, name="latentgraph-run", daemon=True).start()
    while not done.is_set():
        try:
            done.wait(0.2)
        except KeyboardInterrupt:
            interrupt.set()
            _eprint("interrupting...")
    return box["result"]


def cmd_run(args: argparse.Namespace) -> int:
    from engine.executor import Executor
    from engine.graph import validate
    from nodes.registry import REGISTRY

    _setup_device(args)
    try:
        prompt, paths, _ = _prepare(args)
    except Exception as exc:
        _eprint(_load_error_text(args.workflow, exc))
        return EXIT_INVALID
    unknown = [t for t in args.target or [] if t not in prompt]
    if unknown:
        _eprint(f"error: --target {', '.join(unknown)}: no such node id (nodes: {_node_names(prompt)})")
        return EXIT_INVALID
    val = validate(prompt, REGISTRY, paths, args.target)
    if not val.ok:
        if args.json:
            print(json.dumps({"status": "invalid", **val.response_body(), "lines": val.lines()}, indent=2))
        for line in val.lines() + _choice_hints(val.response_body(), args):
            _eprint(line)
        return EXIT_INVALID
    for line in val.lines():
        _eprint(f"skipped: {line}")
    for d in (paths.output_dir, paths.temp_dir):
        d.mkdir(parents=True, exist_ok=True)
    bars = _Bars(val.prompt, enabled=sys.stderr.isatty() and not args.json)
    workflow = getattr(args, "workflow_doc", None)
    extra = {"extra_pnginfo": {"workflow": workflow}} if workflow else None
    result = _execute_interruptible(Executor(REGISTRY, paths), prompt, args.target, bars, extra)
    files = _output_files(result, paths)
    if args.json:
        print(json.dumps({"status": result.status, "prompt_id": result.prompt_id, "files": files,
                          "outputs": result.outputs, "ran": result.ran, "cached": result.cached,
                          "timings": result.timings, "warnings": result.warnings, "error": result.error},
                         indent=2, default=repr))
    if result.status == "success":
        if not args.json:
            print("\n".join(files) if files else "done (no output files)")
        return EXIT_OK
    if result.status == "interrupted":
        _eprint(f"interrupted at node {result.error.get('node_id')} ({result.error.get('node_type')})")
    else:
        _eprint(_error_text(result.error or {}))
    return EXIT_RUNTIME


@dataclass
class Services:
    """The engine objects a server runs on: built once here, passed down, never rebuilt below."""

    paths: Paths
    registry: Any  # the node registry (nodes.registry.REGISTRY once loaded)
    executor: Executor
    queue: JobQueue
    load_errors: list[dict] = field(default_factory=list)  # node modules that failed to import


def build_services(args: argparse.Namespace) -> Services:
    """Device, nodes, folders, executor and job queue (user_dir/latentgraph.db) for `serve`."""
    from engine.executor import Executor
    from engine.queue import JobQueue
    from nodes.registry import REGISTRY

    _setup_device(args)
    errors = load_nodes(custom_node_dirs(args), plugin_probe(args))
    for err in errors:
        _eprint(f"warning: node module {err['module']} failed to load: {err['error']}")
    paths = make_paths(args)
    paths.ensure_dirs()
    from engine.model_hashes import start_background_hashing

    start_background_hashing(paths)  # sha256 of new model files, at low priority, off the job path
    executor = Executor(REGISTRY, paths, **cache_options(args))
    queue = JobQueue(Path(paths.user_dir) / "latentgraph.db", executor)
    return Services(paths=paths, registry=REGISTRY, executor=executor, queue=queue, load_errors=errors)


def cmd_serve(args: argparse.Namespace) -> int:
    from ui.hosts import listen_refusal
    from ui.server import serve

    problem = listen_refusal(args.listen, args.auth_token, args.allow_no_auth)
    if problem:  # before loading anything: a usage error should not wait for torch
        _eprint(f"error: {problem}")
        return EXIT_INVALID
    services = build_services(args)
    code = serve(services, host=args.listen, port=args.port, token=args.auth_token,
                 allowed_hosts=args.allowed_hosts, allow_no_auth=args.allow_no_auth, editor=not args.no_editor)
    # The interpreter's last garbage collection walks every object torch and gradio made: 4-5 s
    # measured here, which a stop signal should not wait for. Frozen objects are skipped; the OS
    # takes the memory back anyway.
    gc.freeze()
    return code


def cmd_verify_models(args: argparse.Namespace) -> int:
    """Hash every model file, compare with the recorded hashes, check safetensors headers."""
    from engine.model_hashes import HashRecords, verify_models

    paths = make_paths(args)

    def show(item: dict) -> None:
        if not args.json:
            print(f"{item['status']:10} {item['folder']}/{item['name']}  {item['sha256'] or ''}")
            for problem in item["problems"]:
                print(f"           - {problem}")

    report = verify_models(paths, HashRecords.for_paths(paths), on_item=show)
    if args.json:
        print(json.dumps({"ok": not report.problems, "summary": report.summary(), "files": report.items},
                         indent=2))
    else:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(report.summary().items())) or "no model files"
        print(f"{len(report.problems)} problem(s); {counts}")
    return EXIT_RUNTIME if report.problems else EXIT_OK


def cmd_make_tiny(args: argparse.Namespace) -> int:
    from ldm.tiny import make_tiny_models

    for name, path in make_tiny_models(Path(args.dir)).items():
        print(f"{name}: {path}")
    return EXIT_OK


def cmd_train_demo(argv: list[str]) -> int:
    """`main.py train-demo ...` is `python -m tools.train_demo ...`: every option goes through."""
    from tools.train_demo import main as train_main

    try:
        return int(train_main(argv) or 0)
    except SystemExit as exc:  # argparse: -h or a bad option
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_INVALID


COMMANDS = {"serve": cmd_serve, "run": cmd_run, "validate": cmd_validate, "nodes": cmd_nodes,
            "make-tiny-models": cmd_make_tiny, "verify-models": cmd_verify_models}


def main(argv: list[str] | None = None) -> int:
    """Parses argv (serve when no subcommand is given) and dispatches."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]
    if argv[0] == "train-demo":
        return cmd_train_demo(argv[1:])
    args = build_parser().parse_args(argv)
    apply_base_directory(args, argv)
    if getattr(args, "max_memory", None):  # serve / run --max-memory: one process-wide budget
        from ldm.memory import set_memory_budget

        set_memory_budget(args.max_memory)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # `main.py nodes | head`
        return EXIT_OK
    except KeyboardInterrupt:  # Ctrl-C outside a run (loading nodes, models...)
        _eprint("interrupted")
        return 130
    except DeviceError as exc:
        _eprint(f"error: {exc}")
        return EXIT_INVALID
    except OSError as exc:  # a folder that cannot be created, a file that cannot be written...
        _eprint(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
