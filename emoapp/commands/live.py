"""``emoapp live --no-gui``: the live pipeline without a window.

Webcam, microphone and typed text (or files replayed in their place) are encoded
concurrently and fused in real time; each fused estimate becomes a timeline row (the
``emoapp analyze`` format) written to ``--out``, and a status line per modality goes to
stderr. A modality whose model fails to load, or whose device is missing, is reported
and the others keep running.

Consent: a real camera or microphone opens only with ``--allow-camera`` /
``--allow-mic`` (consent for this run, recorded in the audit log when the device opens)
or with consent granted in the window (saved in ``consent.json``). Without either, that
modality is refused with a one-line reason, shown as failed, and the rest runs; replayed
files need nothing. Each camera and microphone source carries this run's consent gate
and asks it whenever it opens (a source without one never opens), again at each retry,
and a grant revoked meanwhile (in the window, by another emoapp, or by deleting the
consent file) closes its device within a tenth of a second or so.
``--allow-camera-for`` / ``--allow-mic-for DURATION`` allow a modality for that long from
the start of the run: then it is withdrawn (whatever feeds it, a replayed file included)
through the session's one withdrawal path, and the expiry is recorded in the audit log.

``--out FILE`` holds scores only (the rows of :mod:`emoapp.recorded.timeline`: no frame,
sound or text), and the run adds one line to the audit log naming the file and the
number of rows.

``--stream [HOST:]PORT`` also sends each row to local WebSocket clients
(:mod:`emoapp.stream.server`): on 127.0.0.1 unless a host is named (then with a
warning), each client with the token: a random one printed on stderr, or one given with
``--stream-token-file FILE``, the ``EMOAPP_STREAM_TOKEN`` environment variable or
``--stream-token`` (at least 16 characters; a given token is not printed). A handshake
from a web page (one with an ``Origin`` header) is refused unless
``--stream-allow-origin`` names that origin.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from emoapp.capture.base import Source
from emoapp.commands.asr_options import add_asr_option, live_transcriber
from emoapp.commands.common import (
    add_fusion_options,
    add_live_options,
    add_model_options,
    fusion_options,
    live_options,
    model_options,
)
from emoapp.commands.sources import add_source_options, build_sources, describe_devices
from emoapp.config import fusion_config, load_encoders
from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality
from emoapp.privacy.audit import ExportFields
from emoapp.privacy.consent import (
    ALLOW_FOR_FLAG,
    DEVICE_NAME,
    ConsentChange,
    ConsentGate,
    ConsentRequiredError,
    add_consent_options,
    consent_from_args,
)

if TYPE_CHECKING:
    from emoapp.live.session import LiveSession
    from emoapp.stream.server import EstimateStream, StreamAddress

GUI_HINT = (
    "emoapp live: the window is `emoapp` without a subcommand (e.g. `emoapp --camera 0 "
    "--mic default`); add --no-gui to run the live pipeline headless"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "live",
        help="run the live pipeline (camera, microphone, text) headless",
        description=(
            "Run the live pipeline without a window: camera, microphone and typed text (or "
            "files replayed in their place) are analysed as they come and fused into one "
            "estimate of displayed expression, written as timeline rows."
        ),
    )
    parser.add_argument(
        "--no-gui",
        action="store_true",
        help="run headless (required for now; the window is `emoapp` with no subcommand)",
    )
    add_source_options(parser)
    add_consent_options(parser)
    out = parser.add_argument_group("output")
    out.add_argument(
        "--out",
        metavar="FILE|-",
        help="write a timeline row per estimate: JSON lines (CSV for a .csv name); "
        "'-' for stdout. Nothing is written unless asked.",
    )
    out.add_argument(
        "--stream",
        metavar="[HOST:]PORT",
        help="also send every row to WebSocket clients on this port (host 127.0.0.1 unless "
        "named; port 0 picks a free one); each client needs the token (a random one is "
        "printed on stderr)",
    )
    out.add_argument(
        "--stream-token",
        metavar="TOKEN",
        help="the token clients of --stream must send, at least 16 characters (default: "
        "$EMOAPP_STREAM_TOKEN, else a random one per run). A token on the command line "
        "is visible to other users in `ps`: prefer --stream-token-file or the variable",
    )
    out.add_argument(
        "--stream-token-file",
        metavar="FILE",
        help="read the token clients of --stream must send from the first line of FILE",
    )
    out.add_argument(
        "--stream-allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let web pages from ORIGIN (e.g. http://localhost:3000) connect to --stream "
        "(repeatable); a handshake carrying any other Origin header is refused",
    )
    out.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="stop after S seconds of running, counted once the models are loaded and "
        "the sources open (default: run until Ctrl-C, or until every replayed file has "
        "ended)",
    )
    out.add_argument(
        "--row-rate",
        type=float,
        default=10.0,
        metavar="HZ",
        help="at most this many rows a second (default: 10)",
    )
    out.add_argument(
        "--status-every",
        type=float,
        default=5.0,
        metavar="S",
        help="print a status line on stderr every S seconds (0: only at the end; default: 5)",
    )
    out.add_argument(
        "--verbose",
        action="store_true",
        help="also say on stderr each model's device and precision (and why), how the "
        "cores are shared (threads per worker) and "
        "how often faces were detected rather than tracked",
    )
    add_asr_option(parser)
    adapt = parser.add_argument_group("voice adaptation (embedded voice model)")
    adapt.add_argument(
        "--voice-calibration",
        metavar="FILE|stored|none",
        default="stored",
        help='"calibrate to me" statistics to adapt to: a file written by `emoapp '
        "voice-calibration record`, 'stored' (the default: yours, if you stored one and "
        "microphone consent is granted) or 'none'",
    )
    adapt.add_argument(
        "--no-voice-adaptation",
        action="store_true",
        help="no running estimate of the speaker's voice statistics (the population model, "
        "plus a calibration if one is used)",
    )
    add_model_options(parser)
    add_fusion_options(parser)
    add_live_options(parser)
    parser.set_defaults(func=run)


def refused_devices(sources: Mapping[Modality, Source], gate: ConsentGate) -> dict[Modality, str]:
    """The device sources that may not open, and why (one line each). Replayed files
    and typed text need no consent; nothing is recorded or opened here."""
    refused = {}
    for modality, source in sources.items():
        if not getattr(source, "is_device", True) or gate.is_allowed(modality):
            continue
        try:
            gate.require(modality, source)
        except ConsentRequiredError as refusal:
            refused[modality] = str(refusal)
    return refused


class RevocationWatch:
    """Closes a device whose saved consent is revoked while the run goes on, and
    withdraws a modality whose consent for a time (``--allow-mic-for``) has run out.

    The consent store tells its listeners on the thread that notices the change (the
    one that checks, or a device's supervisor asking the gate): they only queue the
    modality. :meth:`check`, on the runner's thread about ten times a second, looks at
    the consent file (a stat) and stops the queued modalities there. A modality allowed
    by a flag for this run is not affected: the flag is this run's consent."""

    def __init__(self, gate: ConsentGate, session: LiveSession, devices: set[Modality]) -> None:
        self.gate = gate
        self.session = session
        self.devices = set(devices)
        self._revoked: queue.SimpleQueue[Modality] = queue.SimpleQueue()
        self._unsubscribe = gate.store.add_listener(self._on_change)

    def _on_change(self, change: ConsentChange) -> None:
        if not change.granted:
            self._revoked.put(change.modality)

    def check(self) -> None:
        for modality in self.gate.expire_due():  # audited as expired by the gate
            self.devices.discard(modality)
            self.session.withdraw(modality, note="consent expired")
            print(
                f"emoapp live: {modality.value} withdrawn: its consent "
                f"({ALLOW_FOR_FLAG[modality]}) expired",
                file=sys.stderr,
                flush=True,
            )
        self.gate.store.records()  # picks up a change made elsewhere (one stat)
        while not self._revoked.empty():
            modality = self._revoked.get()
            if modality not in self.devices or self.gate.is_allowed(modality):
                continue
            self.devices.discard(modality)
            self.session.withdraw(modality, note="consent revoked")
            print(
                f"emoapp live: {DEVICE_NAME[modality]} closed: consent was revoked",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        self._unsubscribe()


class VerboseReport:
    """``--verbose``: each torch encoder's device and precision with the reason (once),
    the thread plan on stderr whenever it changes, and at the end how many frames had
    their faces detected and how many tracked, and on how many the classifier ran."""

    def __init__(self, session: LiveSession) -> None:
        self.session = session
        self._shown: object = None
        self._precision_shown = False

    def precision_lines(self) -> list[str]:
        """Per torch encoder: where and in what precision it runs, and why."""
        lines = []
        for m in Modality:
            encoder = self.session.encoder(m)
            describe = getattr(encoder, "describe_precision", None)
            if callable(describe):
                lines.append(f"{m.value}: {describe()}")
        return lines

    def check(self) -> None:
        if not self._precision_shown:
            self._precision_shown = True
            for line in self.precision_lines():
                print(f"emoapp live: {line}", file=sys.stderr, flush=True)
        plan = self.session.thread_plan
        if plan is not None and plan != self._shown:
            self._shown = plan
            print(f"emoapp live: {plan.describe()}", file=sys.stderr, flush=True)

    def finish(self) -> None:
        self.check()
        encoder = self.session.encoder(Modality.FACE)
        detector = getattr(encoder, "detector", None)
        detections = getattr(detector, "detections", None)
        tracked = getattr(detector, "tracked", None)
        if detections is not None and tracked is not None:
            every = getattr(detector, "every", 1)
            print(
                f"emoapp live: face: {detections} frame(s) detected, {tracked} tracked "
                f"(detection every {every} frames, and when the tracker loses the face)",
                file=sys.stderr,
                flush=True,
            )
        reuse = getattr(encoder, "reuse", None)
        if reuse is not None:
            print(
                f"emoapp live: face: classifier ran on {reuse.run} frame(s), "
                f"{reuse.reused} reused an earlier classification (at most "
                f"{reuse.max_age_s:g} s old, tracked faces that neither moved nor changed)",
                file=sys.stderr,
                flush=True,
            )


def adapt_voice(encoder: object, args: argparse.Namespace, gate: ConsentGate) -> list[str]:
    """Set up the voice model's adaptation for this run (a model that does not adapt is
    left alone): the running estimate (unless ``--no-voice-adaptation``), a calibration
    (``--voice-calibration``, only with microphone consent), and a listener that forgets
    both when microphone consent is withdrawn. Returns lines to show."""
    from emoapp.encoders.adaptation import AdaptationError, SpeakerStats
    from emoapp.privacy.voice_calibration import (
        CALIBRATION_FILE,
        delete_on_revoke,
        load_calibration,
    )

    if not getattr(encoder, "adaptive", False):
        return []
    lines = []
    encoder.running_enabled = not getattr(args, "no_voice_adaptation", False)  # type: ignore[attr-defined]
    choice = getattr(args, "voice_calibration", "stored") or "stored"
    stats = None
    try:
        if choice == "stored":
            if gate.is_allowed(Modality.VOICE):
                stats = load_calibration(
                    encoder.model_id,  # type: ignore[attr-defined]
                    gate.store,
                    gate.store.audit,
                    gate.store.folder / CALIBRATION_FILE,
                )
        elif choice != "none":
            if not gate.is_allowed(Modality.VOICE):
                raise EmoappError(
                    "--voice-calibration: a voice calibration is used only with microphone "
                    "consent (--allow-mic, or granted in the window)"
                )
            stats = SpeakerStats.load(Path(choice), encoder.model_id)  # type: ignore[attr-defined]
        if stats is not None:
            encoder.set_calibration(stats)  # type: ignore[attr-defined]
            lines.append(f"voice: adapting to a calibration of {stats.seconds:.0f} s of speech")
    except AdaptationError as exc:
        lines.append(f"voice: calibration not used: {exc}")

    def forget(change: ConsentChange) -> None:
        if change.modality is Modality.VOICE and not change.granted:
            encoder.reset_adaptation()  # type: ignore[attr-defined]

    gate.store.add_listener(forget)
    delete_on_revoke(gate.store, gate.store.audit, gate.store.folder / CALIBRATION_FILE)
    if encoder.running_enabled:  # type: ignore[attr-defined]
        lines.append("voice: adapting to the speaker as they speak (running estimate)")
    return lines


def run(args: argparse.Namespace) -> int:
    if getattr(args, "list_devices", False):
        print(describe_devices(consent_from_args(args)))
        return 0
    if not args.no_gui:
        print(GUI_HINT, file=sys.stderr)
        return 2
    if args.duration is not None and args.duration <= 0:
        raise EmoappError("--duration must be positive")
    if args.row_rate <= 0:
        raise EmoappError("--row-rate must be positive")
    if args.status_every < 0:
        raise EmoappError("--status-every must not be negative")
    stream_address = _stream_address(args)
    stream_token = _stream_token(args) if stream_address is not None else None
    gate = consent_from_args(args)
    sources = build_sources(args, consent=gate)
    if not sources:
        raise EmoappError(
            "nothing to capture: give --camera INDEX|FILE, --mic DEVICE|FILE and/or --text-file"
        )
    refused = refused_devices(sources, gate)
    if len(refused) == len(sources):
        raise ConsentRequiredError(next(iter(refused)), "; ".join(refused.values()))
    for reason in refused.values():
        print(f"emoapp live: {reason}", file=sys.stderr, flush=True)
    runnable = {m: s for m, s in sources.items() if m not in refused}
    live = live_options(args)

    from emoapp.live.headless import LiveRunOptions, run_live
    from emoapp.live.session import LiveSession
    from emoapp.recorded.timeline import TimelineWriter
    from emoapp.stream.server import RowSinks

    writer = TimelineWriter(args.out) if args.out else None
    from emoapp.core.fusion import DISPLAY_HYSTERESIS, DISPLAY_MIN_HOLD_S, DISPLAY_SMOOTHING_S

    # A live estimate is read as it happens: steady it by default (rows keep the raw one).
    models = model_options(args)
    config = fusion_config(
        models, fusion_options(args), DISPLAY_SMOOTHING_S, DISPLAY_HYSTERESIS, DISPLAY_MIN_HOLD_S
    )
    transcriber = live_transcriber(args.asr, models, runnable)
    wanted = set(runnable) | ({Modality.TEXT} if transcriber is not None else set())
    loaded = load_encoders(models, modalities=wanted, strict=False)
    if not loaded.encoders:
        reasons = "; ".join(f"{m.value}: {why}" for m, why in loaded.failures.items())
        raise EmoappError(f"no model could be loaded ({reasons or 'every modality is off'})")
    voice = loaded.encoders.get(Modality.VOICE)
    if voice is not None:
        for line in adapt_voice(voice, args, gate):
            print(f"emoapp live: {line}", file=sys.stderr, flush=True)
    session = LiveSession(
        {m: s for m, s in runnable.items() if m in loaded.encoders or m in loaded.failures},
        loaded.encoders,
        fusion=config,
        rate_hz=max(10.0, args.row_rate),
        unavailable={**loaded.failures, **refused},
        threads=live.threads,
        face_detect_every=live.face_detect_every,
        face_reclassify_after=live.face_reclassify_after,
        transcriber=transcriber if Modality.TEXT in loaded.encoders else None,
    )
    if session.transcriber is not None:
        # Load the recogniser here, before the run: loading holds the interpreter (0.3 s
        # quiet, seconds on a busy machine), which on the transcriber's thread would
        # stall a running session and use up a short --duration. The window keeps loading
        # it in the background. A failure is left to the transcriber's thread, which
        # reports it and turns transcription off, as it would have without this.
        with contextlib.suppress(Exception):
            session.transcriber.recognizer.load()
    options = LiveRunOptions(
        duration_s=args.duration,
        status_every_s=args.status_every,
        row_rate_hz=args.row_rate,
    )
    stream = _start_stream(args, stream_address, stream_token, gate)
    sink = RowSinks(writer, stream) if stream is not None else writer
    watch = RevocationWatch(
        gate, session, {m for m, s in runnable.items() if getattr(s, "is_device", True)}
    )
    verbose = VerboseReport(session) if getattr(args, "verbose", False) else None

    def tick() -> None:
        watch.check()
        if verbose is not None:
            verbose.check()

    gate.start_expiry_clock()  # --allow-*-for count from the start of the run
    try:
        summary = run_live(session, sink, options, on_tick=tick)
    finally:
        if verbose is not None:
            verbose.finish()
        watch.close()
        if stream is not None:
            figures = stream.close(flush_s=1.0)
            print(
                f"emoapp live: stream stopped; {figures.accepted} client(s), "
                f"{figures.refused} refused, {figures.messages} messages sent, "
                f"{figures.dropped} dropped for slow clients",
                file=sys.stderr,
            )
        if writer is not None:
            writer.close()
            if writer.rows_written and not writer.is_stdout:
                # A timeline file is an export: what, where and how many rows, never rows.
                gate.store.audit.exported(
                    "live timeline", writer.target, writer.format, ExportFields(),
                    writer.rows_written,
                )  # fmt: skip
    # A slow start (loading models on a busy machine) is named, since --duration counts
    # from when the session is up.
    startup = f" ({summary.startup_s:.1f} s of it starting)" if summary.startup_s >= 1.0 else ""
    print(
        f"emoapp live: {summary.reason} after {summary.elapsed_s:.1f} s{startup}; "
        f"{summary.estimates} estimates, {summary.rows} rows written",
        file=sys.stderr,
    )
    return 0


def _stream_address(args: argparse.Namespace) -> StreamAddress | None:
    """The ``--stream`` address, checked before anything opens."""
    from emoapp.stream.server import StreamError, normalize_origin, parse_address

    if getattr(args, "stream", None) is None:
        for option in ("stream_token", "stream_token_file"):
            if getattr(args, option, None) is not None:
                flag = "--" + option.replace("_", "-")
                raise StreamError(f"{flag} needs --stream [HOST:]PORT")
        if getattr(args, "stream_allow_origin", None):
            raise StreamError("--stream-allow-origin needs --stream [HOST:]PORT")
        return None
    for origin in getattr(args, "stream_allow_origin", None) or []:
        normalize_origin(origin)
    return parse_address(args.stream)


def _stream_token(args: argparse.Namespace) -> tuple[str, str] | None:
    """The token clients must send and where it came from (``given``, ``file``,
    ``environment``), or None for a random one; checked before anything opens."""
    import os

    from emoapp.stream.server import TOKEN_ENV, StreamError, check_token, read_token_file

    given = getattr(args, "stream_token", None)
    from_file = getattr(args, "stream_token_file", None)
    if given is not None and from_file is not None:
        raise StreamError("give --stream-token or --stream-token-file, not both")
    if from_file is not None:
        if os.name == "posix":
            try:
                loose = os.stat(from_file).st_mode & 0o077
            except OSError:
                loose = 0  # read_token_file says why it cannot be read
            if loose:
                print(
                    f"emoapp live: warning: --stream-token-file {from_file} can be read by "
                    "other users (chmod 600 it)",
                    file=sys.stderr,
                    flush=True,
                )
        return read_token_file(from_file), "file"
    if given is not None:
        return check_token(given), "given"
    from_env = os.environ.get(TOKEN_ENV)
    if from_env is not None:
        return check_token(from_env, TOKEN_ENV), "environment"
    return None


def _start_stream(
    args: argparse.Namespace,
    address: StreamAddress | None,
    token: tuple[str, str] | None,
    gate: ConsentGate,
) -> EstimateStream | None:
    """Start the stream (listening before the first estimate) and tell the person how
    to connect; a generated token goes to stderr only, a given one is not repeated."""
    if address is None:
        return None
    from emoapp.stream.server import EstimateStream

    if not address.loopback:
        print(
            f"emoapp live: warning: --stream {address.host} is not a loopback address: other "
            "computers that can reach it may connect (with the token) and receive the "
            "estimates; show the people analysed the disclosure notice "
            "(resources/disclosure/notice-v1.md)",
            file=sys.stderr,
            flush=True,
        )
    stream = EstimateStream(
        address,
        token=token[0] if token is not None else None,
        token_source=token[1] if token is not None else "generated",
        audit=gate.store.audit,
        allowed_origins=getattr(args, "stream_allow_origin", None) or [],
    )
    stream.start()
    shown = {
        "generated": f"token {stream.token}",
        "given": "the --stream-token",
        "file": f"the token in {getattr(args, 'stream_token_file', '')}",
        "environment": "the token in $EMOAPP_STREAM_TOKEN",
    }[stream.token_source]
    print(
        f"emoapp live: streaming estimates at {stream.url} "
        f"({shown}: add ?token=... to the URL or send 'Authorization: Bearer ...')",
        file=sys.stderr,
        flush=True,
    )
    return stream
