"""One loading gate for every way a PyraTok checkpoint is read.

``PyraTokModel.from_pretrained``, ``AutoencoderPyraTok.from_pretrained`` (and through it the T2V pipeline's
``vae``), the release converter and the command line call :func:`check_checkpoint_folder` before anything is
handed to transformers, diffusers or safetensors. It checks, cheaply and in this order:

1. the path: empty, missing, a file instead of a folder -> :class:`~pyratok_hf.errors.CheckpointNotFoundError`
   (an ``OSError`` / ``FileNotFoundError``). A name that is not a local path but looks like a Hub id is left to
   the Hub (``None`` is returned);
2. ``config.json``: readable UTF-8 JSON holding an object that builds a valid :class:`PyraTokConfig`
   -> otherwise :class:`~pyratok_hf.errors.ConfigError` naming the file;
3. the weights: every safetensors file's 8-byte header length, JSON header, dtypes, shapes and byte offsets
   are checked against the file size (only the header is read) -> otherwise
   :class:`~pyratok_hf.errors.CheckpointError` naming the file and what to do.

Damage the header cannot show (flipped bytes inside tensor data) is caught after loading by
:func:`check_finite_weights`, and whatever safetensors itself still refuses is converted by
:func:`checkpoint_load_errors`.
"""

from __future__ import annotations

import json
import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

from .errors import CheckpointError, CheckpointNotFoundError, ConfigError, PyraTokError

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
DIFFUSERS_WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
DIFFUSERS_INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"
PICKLE_NAMES = ("pytorch_model.bin", "diffusion_pytorch_model.bin", "model.pt", "model.pth", "model.ckpt", "pytorch_model.bin.index.json")

#: Bytes per element of each safetensors dtype (the format's own names).
SAFETENSORS_DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
    "C64": 8, "C128": 16,
}  # fmt: skip
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
MAX_CONFIG_BYTES = 16 * 2**20
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]{0,95}(/[A-Za-z0-9][\w.\-]{0,95})?")

FIX_WEIGHTS = (
    "The file is damaged or was not written completely (interrupted download or save): re-download it, or "
    "re-save the model with save_pretrained."
)


@dataclass
class CheckedCheckpoint:
    """What the gate found in a local folder."""

    folder: str
    config: dict  # the parsed config.json
    weights: list[str] = field(default_factory=list)  # checked safetensors files
    layout: str = "transformers"  # "transformers" (model.safetensors), "diffusers", or "pickle" (allowed)


# ----------------------------------------------------------------------------- paths
def looks_like_hub_id(text: str) -> bool:
    """``name`` or ``owner/name`` as the Hub accepts them (and nothing that is plainly a local path)."""
    return bool(_HUB_ID.fullmatch(text)) and ".." not in text and "--" not in text and not text.endswith((".", "-"))


def resolve_model_folder(path, subfolder: str | None = None) -> str | None:
    """The local folder ``path/subfolder``; ``None`` for a Hub id; :class:`CheckpointNotFoundError` otherwise."""
    if path is None or (isinstance(path, str) and not path.strip()):
        raise CheckpointNotFoundError(
            "no model path given (got an empty path); pass the folder written by save_pretrained, or a Hub id like 'org/name'."
        )
    if not isinstance(path, (str, os.PathLike)):
        raise CheckpointNotFoundError(f"the model path must be a folder path or a Hub id string, got {type(path).__name__} {path!r}.")
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if "\x00" in text or (subfolder and "\x00" in str(subfolder)):
        raise CheckpointNotFoundError(f"no such folder: {text!r} (the path contains a NUL character).")
    if subfolder is not None and not isinstance(subfolder, (str, os.PathLike)):
        raise CheckpointNotFoundError(f"subfolder must be a string, got {type(subfolder).__name__}.")
    folder = os.path.join(text, os.fspath(subfolder)) if subfolder else text
    if os.path.isdir(folder):
        return folder
    if os.path.exists(folder):
        raise CheckpointNotFoundError(
            f"{folder} is a file, not a folder: pass the folder that holds config.json and model.safetensors "
            f"({os.path.dirname(os.path.abspath(folder))!r} if this file is one of them)."
        )
    if os.path.isdir(text):
        raise CheckpointNotFoundError(f"no such folder: {folder} ({text} has no subfolder {subfolder!r}); check subfolder=.")
    if os.path.isabs(text) or text.startswith(("." + os.sep, ".." + os.sep, "~")) or text in (".", "..") or not looks_like_hub_id(text):
        raise CheckpointNotFoundError(
            f"no such folder: {folder}. Pass the folder written by save_pretrained (or a Hub id like 'org/name')."
        )
    return None  # a Hub id: the caller asks the Hub, and turns its errors into a CheckpointError


# ----------------------------------------------------------------------------- config.json
def read_json_object(path: str, what: str = "config.json", error=ConfigError) -> dict:
    """Parse ``path`` as one JSON object; ``error`` (ConfigError by default) names the file and the fix."""
    if not os.path.exists(path):
        raise CheckpointError(
            f"{path} is missing: the folder is not a saved PyraTok model, or the save/download was interrupted. "
            "Re-save it with save_pretrained or re-download it."
        )
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} is not a file; {what} must be the JSON file written by save_pretrained.")
    try:
        size = os.path.getsize(path)
        if size > MAX_CONFIG_BYTES:
            raise error(f"{path} is {size} bytes, far too large for a {what}: it is not one (re-save or re-download it).")
        with open(path, "rb") as handle:
            raw = handle.read()
    except PyraTokError:
        raise
    except OSError as err:
        raise CheckpointError(f"cannot read {path}: {err.strerror or err}. Check its permissions.") from err
    if raw.startswith(b"\xef\xbb\xbf"):
        raise error(
            f"{path} starts with a UTF-8 byte-order mark, which transformers cannot read: save it as plain UTF-8 "
            "(e.g. re-save the model with save_pretrained)."
        )
    try:
        text = raw.decode("utf-8")
        data = json.loads(text)
    except UnicodeDecodeError as err:
        raise error(f"{path} is not UTF-8 text (byte {err.start}): it is not a {what}; re-save the model or re-download it.") from err
    except (json.JSONDecodeError, RecursionError) as err:
        where = f" at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else " (nested too deeply)"
        raise error(
            f"{path} is not valid JSON{where}: {getattr(err, 'msg', err)}. Fix the edit, or re-save the model (save_pretrained) "
            "or re-download it."
        ) from err
    if not isinstance(data, dict):
        raise error(
            f"{path} must hold a JSON object ({{\"model_type\": \"pyratok\", ...}}), got a JSON {type(data).__name__}: "
            f"{text.strip()[:40]!r}. Re-save the model or re-download it."
        )
    return data


def check_config_dict(data: dict, source: str):
    """Build the :class:`PyraTokConfig` that ``data`` describes, or raise :class:`ConfigError` naming ``source``."""
    from .configuration_pyratok import PyraTokConfig

    model_type = data.get("model_type")
    if model_type is not None and model_type != "pyratok":
        raise ConfigError(
            f"{source} describes a {model_type!r} model, not PyraTok (model_type 'pyratok'); load it with its own class."
        )
    for key in ("dtype", "torch_dtype"):  # transformers reads these before building anything
        value = data.get(key)
        if value is not None and value not in ("float32", "float16", "bfloat16", "float64", "auto"):
            raise ConfigError(
                f"{source}: {key} must be a dtype name such as \"float32\" or \"bfloat16\" (or absent), got {value!r}. "
                "Fix config.json, or re-save the model with save_pretrained."
            )
    fields = {k: v for k, v in data.items() if not k.startswith("_")}
    try:
        return PyraTokConfig.from_dict(fields) if "model_type" in fields else PyraTokConfig(**{k: v for k, v in fields.items() if k != "model_type"})
    except ConfigError as err:
        raise ConfigError(f"{source}: {err} Fix config.json, or re-save the model with save_pretrained.") from err
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError, RecursionError) as err:
        raise ConfigError(f"{source} has a field of the wrong type or value ({type(err).__name__}: {err}). Fix config.json, or re-save the model.") from err


# ----------------------------------------------------------------------------- safetensors
def check_safetensors_file(path: str, *, float_only: bool = False) -> dict:
    """Validate a safetensors file from its header alone; returns the header (tensor name -> info).

    Reads only the 8-byte length and the JSON header: dtypes, shapes and byte offsets must be consistent and
    the tensors must exactly fill the rest of the file. ``float_only``: every tensor must be floating point
    (PyraTok's weights all are, so an integer dtype means an edited header).
    """
    name = os.path.basename(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(8)
            if size == 0:
                raise CheckpointError(f"{path} is empty (0 bytes). {FIX_WEIGHTS}")
            if len(head) < 8:
                raise CheckpointError(f"{path} is truncated ({size} bytes, less than a safetensors header). {FIX_WEIGHTS}")
            pickled = (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or head[:4] == b"PK\x03\x04"
            length = int.from_bytes(head, "little")
            if pickled and (length > MAX_HEADER_BYTES or 8 + length > size or handle.read(1) != b"{"):
                kind = "a torch.save zip archive" if head[:2] == b"PK" else "a Python pickle"
                raise CheckpointError(
                    f"{path} is {kind}, not safetensors, although it is named {name}. Pickle can run code when loaded and "
                    "is refused: convert it to safetensors in a trusted environment (torch.load(..., weights_only=True), "
                    "then safetensors.torch.save_file), or re-download the real file."
                )
            handle.seek(8)
            if length < 2 or length > MAX_HEADER_BYTES or 8 + length > size:
                raise CheckpointError(
                    f"{path} is not a valid safetensors file: its header length field says {length} bytes but the file has "
                    f"{size} bytes in all (truncated, or the first bytes were overwritten). {FIX_WEIGHTS}"
                )
            raw = handle.read(length)
    except PyraTokError:
        raise
    except OSError as err:
        raise CheckpointError(f"cannot read {path}: {err.strerror or err}. Check that the file exists and is readable.") from err
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"{path} has a damaged safetensors header (not UTF-8 JSON: {err}). {FIX_WEIGHTS}") from err
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} has a damaged safetensors header (a JSON {type(header).__name__}, not an object). {FIX_WEIGHTS}")
    data_size = size - 8 - length
    spans = []
    for key, info in header.items():
        if key == "__metadata__":
            if info is not None and not (isinstance(info, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in info.items())):
                raise CheckpointError(f"{path}: the header's __metadata__ must map strings to strings. {FIX_WEIGHTS}")
            continue
        problem = _tensor_entry_problem(info, float_only)
        if problem:
            raise CheckpointError(f"{path}: tensor {key!r} in the header {problem}. {FIX_WEIGHTS}")
        begin, end = info["data_offsets"]
        spans.append((begin, end, key))
    spans.sort()
    position = 0
    for begin, end, key in spans:
        if begin != position:
            raise CheckpointError(
                f"{path}: tensor {key!r} starts at byte {begin} of the data but the previous one ends at {position} "
                f"(overlapping or missing bytes: the header was edited). {FIX_WEIGHTS}"
            )
        position = end
    if position != data_size:
        raise CheckpointError(
            f"{path}: the header describes {position} bytes of tensor data but the file holds {data_size} "
            f"({'truncated' if data_size < position else 'extra bytes at the end'}). {FIX_WEIGHTS}"
        )
    return header


def _tensor_entry_problem(info, float_only: bool) -> str | None:
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
        return "is not {dtype, shape, data_offsets}"
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in SAFETENSORS_DTYPE_SIZES:
        return f"has an unknown dtype {dtype!r}"
    if float_only and dtype not in FLOAT_DTYPES:
        return f"is stored as {dtype}, but PyraTok weights are floating point (F16/BF16/F32/F64)"
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        return f"has an invalid shape {shape!r}"
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int and o >= 0 for o in offsets) and offsets[0] <= offsets[1]):
        return f"has invalid data_offsets {offsets!r}"
    expected = math.prod(shape) * SAFETENSORS_DTYPE_SIZES[dtype]
    if offsets[1] - offsets[0] != expected:
        return f"has shape {shape} ({dtype}, {expected} bytes) but its data_offsets span {offsets[1] - offsets[0]} bytes"
    return None


def check_safetensors_index(folder: str, index_name: str) -> list[str]:
    index_path = os.path.join(folder, index_name)
    index = read_json_object(index_path, what="safetensors index", error=CheckpointError)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index_path} has no usable weight_map (tensor name -> shard file). {FIX_WEIGHTS}")
    shards = []
    for shard in sorted(set(weight_map.values())):
        if os.path.basename(shard) != shard or shard in ("", ".", ".."):
            raise CheckpointError(f"{index_path} names a shard outside the folder ({shard!r}); refusing it. {FIX_WEIGHTS}")
        path = os.path.join(folder, shard)
        if not os.path.isfile(path):
            raise CheckpointError(f"{index_path} lists {shard}, which is missing from {folder}. {FIX_WEIGHTS}")
        shards.append(path)
    return shards


def with_variant(name: str, variant: str | None) -> str:
    """``model.safetensors`` -> ``model.fp16.safetensors`` (the naming transformers and diffusers share)."""
    if not variant:
        return name
    parts = name.split(".")
    return ".".join(parts[:-1] + [variant, parts[-1]])


def find_weights(folder: str, *, allow_pickle: bool = False, float_only: bool = True, variant: str | None = None) -> tuple[str, list[str]]:
    """``(layout, checked safetensors files)`` of a local folder (the same preference as the loaders)."""
    if variant is not None and (not isinstance(variant, str) or not re.fullmatch(r"[\w\-]+", variant)):
        raise CheckpointError(f"variant must be a short name such as 'fp16', got {variant!r}.")
    names = [(layout, with_variant(single, variant), with_variant(index, variant)) for layout, single, index in (
        ("transformers", WEIGHTS_NAME, WEIGHTS_INDEX_NAME), ("diffusers", DIFFUSERS_WEIGHTS_NAME, DIFFUSERS_INDEX_NAME))]
    if variant and not any(os.path.exists(os.path.join(folder, n)) for _, single, index in names for n in (single, index)):
        raise CheckpointError(f"{folder} has no weights of variant {variant!r} (e.g. {names[0][1]}); drop variant= or save that variant.")
    for layout, single, index in names:
        if os.path.exists(os.path.join(folder, single)):
            path = os.path.join(folder, single)
            if not os.path.isfile(path):
                raise CheckpointError(f"{path} is not a file. {FIX_WEIGHTS}")
            check_safetensors_file(path, float_only=float_only)
            return layout, [path]
        if os.path.exists(os.path.join(folder, index)):
            shards = check_safetensors_index(folder, index)
            for shard in shards:
                check_safetensors_file(shard, float_only=float_only)
            return layout, shards
    pickled = [name for name in PICKLE_NAMES if os.path.isfile(os.path.join(folder, name))]
    if pickled and allow_pickle:
        return "pickle", []
    if pickled:
        raise CheckpointError(
            f"{folder} has no safetensors weights. Pickled .bin/.pt files can run code when loaded and are refused; "
            "convert them to safetensors, or pass allow_pickle=True if you trust the source."
        )
    variants = sorted({name.split(".")[-2] for name in os.listdir(folder) if re.fullmatch(r"(model|diffusion_pytorch_model)\.[\w\-]+\.safetensors", name)})
    if variants and not variant:
        raise CheckpointError(
            f"{folder} has no {WEIGHTS_NAME} / {DIFFUSERS_WEIGHTS_NAME}, only variant weights ({', '.join(variants)}): "
            f"pass variant={variants[0]!r}."
        )
    raise CheckpointError(
        f"{folder} has no {WEIGHTS_NAME}: the save or download was interrupted, or this is not a model folder. "
        "Re-save the model with save_pretrained or re-download it."
    )


# ----------------------------------------------------------------------------- the gate
def check_checkpoint_folder(path, subfolder: str | None = None, *, allow_pickle: bool = False, variant: str | None = None) -> CheckedCheckpoint | None:
    """Check a local PyraTok folder before loading it; ``None`` means ``path`` is a Hub id (not local).

    Raises :class:`CheckpointNotFoundError` (bad path), :class:`ConfigError` (config.json) or
    :class:`CheckpointError` (weights), each naming the file and the fix. Only headers are read.
    """
    folder = resolve_model_folder(path, subfolder)
    if folder is None:
        return None
    config_path = os.path.join(folder, "config.json")
    data = read_json_object(config_path)
    check_config_dict(data, config_path)
    layout, weights = find_weights(folder, allow_pickle=allow_pickle, variant=variant)
    return CheckedCheckpoint(folder=folder, config=data, weights=weights, layout=layout)


def download_model_folder(repo_id: str, subfolder: str | None = None, **hub_kwargs) -> str:
    """A Hub repo's (sub)folder as a local folder (``revision``, ``cache_dir``, ``token``, ``local_files_only``,
    ``force_download`` pass through to ``huggingface_hub.snapshot_download``); typed errors when unreachable."""
    from huggingface_hub import snapshot_download

    allowed = {k: v for k, v in hub_kwargs.items() if k in ("revision", "cache_dir", "token", "local_files_only", "force_download") and v is not None}
    try:
        root = snapshot_download(repo_id, allow_patterns=[f"{subfolder}/*"] if subfolder else None, **allowed)
    except Exception as err:  # offline, unknown repo, auth: huggingface_hub raises several types
        raise CheckpointNotFoundError(
            f"{repo_id} is not a local folder, and it could not be fetched from the Hub ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Check the path or repo id; offline, download the repo first "
            "and pass its folder."
        ) from err
    return os.path.join(root, subfolder) if subfolder else root


def load_checked_state_dict(checked: CheckedCheckpoint) -> dict:
    """Every tensor of the checked safetensors files (one file or all shards)."""
    state: dict = {}
    for path in checked.weights:
        state.update(load_safetensors_checked(path, float_only=True))
    return state


def load_pickled_state_dict(folder: str) -> dict:
    """Weights from a pickled checkpoint (only after ``allow_pickle=True``), read with ``weights_only=True``."""
    import torch

    for name in PICKLE_NAMES:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not name.endswith(".json"):
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # torch raises several types for damaged or code-carrying pickles
                raise CheckpointError(f"{path} cannot be read as a weights-only pickle ({type(err).__name__}: {err}). {FIX_WEIGHTS}") from err
    raise CheckpointError(f"{folder} has no single-file pickled checkpoint ({', '.join(PICKLE_NAMES[:4])}). {FIX_WEIGHTS}")


def load_state_dict_strictly(model, state: dict, source: str) -> None:
    """``model.load_state_dict(state, assign=True)`` (no second copy of the weights), or a
    :class:`CheckpointError` naming what is missing, unexpected or misshaped."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as err:  # shape mismatches; torch's message names each tensor
        raise CheckpointError(f"{source}: weights do not match config.json: {err}") from err
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: weights do not match config.json (missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}). "
            "Was config.json edited (restore it), or are the weights damaged (re-download or re-save them)?"
        )


def load_into_empty_model(cls, checked: CheckedCheckpoint, *, dtype=None, strict: bool = True, device_map=None, max_memory=None, offload_folder=None):
    """Build ``cls(config)`` with its parameters on ``meta`` and assign the checkpoint's tensors to them (the
    weights are held once), cast to ``dtype`` keeping LaPQ in float32, check them, place them; in eval mode.

    Both model classes read the other library's folder layout through this."""
    import torch
    from accelerate import init_empty_weights

    config = check_config_dict(checked.config, os.path.join(checked.folder, "config.json"))
    with checkpoint_load_errors(checked.folder):
        with init_empty_weights(include_buffers=False):
            model = cls(config)
        state = load_checked_state_dict(checked) if checked.layout != "pickle" else load_pickled_state_dict(checked.folder)
    if strict:
        load_state_dict_strictly(model, state, ", ".join(checked.weights) or checked.folder)
    else:
        model.load_state_dict(state, strict=False, assign=True)
    del state
    if isinstance(dtype, torch.dtype):
        model._cast_keeping_fp32_modules(dtype)
    check_finite_weights(model, ", ".join(checked.weights) or checked.folder)
    return dispatch_to_device_map(model, device_map, max_memory=max_memory, offload_folder=offload_folder).eval()


def dispatch_to_device_map(model, device_map, *, max_memory=None, offload_folder=None):
    """Place a loaded model as ``device_map`` says, through accelerate (``"auto"``/``"balanced"``/... or an
    explicit map; a single device is a plain ``.to``). Offloaded weights live on disk under ``offload_folder``."""
    import torch

    if device_map is None:
        return model
    if isinstance(device_map, (str, torch.device, int)) and str(device_map) not in ("auto", "balanced", "balanced_low_0", "sequential"):
        return model.to(device_map)
    from accelerate import dispatch_model, infer_auto_device_map

    if isinstance(device_map, str):
        device_map = infer_auto_device_map(model, max_memory=max_memory, no_split_module_classes=list(type(model)._no_split_modules or []))
    devices = set(device_map.values())
    if len(devices) == 1 and "disk" not in devices:  # one device: no hooks needed
        return model.to(devices.pop())
    if "disk" in device_map.values() and offload_folder is None:
        raise CheckpointError("this device_map offloads weights to disk: pass offload_folder=... (a folder with room for the weights).")
    disk = [name for name, device in device_map.items() if device == "disk"]
    if disk:  # write the offloaded weights ourselves: accelerate skips a whole-model ("" -> disk) entry
        from accelerate.utils import offload_state_dict

        state = model.state_dict()
        offload_state_dict(offload_folder, {k: v for k, v in state.items() if any(n == "" or k == n or k.startswith(n + ".") for n in disk)})
    skip = getattr(type(model), "_skip_keys", None) or getattr(type(model), "_skip_keys_device_placement", None)
    model = dispatch_model(model, device_map=device_map, offload_dir=offload_folder, skip_keys=skip)
    model.hf_device_map = device_map
    return model


def _safetensor_error_type():
    try:
        from safetensors import SafetensorError

        return SafetensorError
    except ImportError:  # pragma: no cover - safetensors is a dependency
        return ()


@contextmanager
def checkpoint_load_errors(source):
    """Turn what safetensors / JSON parsing still raise while loading ``source`` into typed errors."""
    safetensor_error = _safetensor_error_type()
    try:
        yield
    except PyraTokError:
        raise
    except safetensor_error as err:
        raise CheckpointError(f"{source}: the safetensors weights cannot be read ({err}). {FIX_WEIGHTS}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{source}: a JSON file is not UTF-8 ({err}). Re-save the model or re-download it.") from err
    except json.JSONDecodeError as err:
        raise ConfigError(f"{source}: a JSON file is not valid JSON ({err}). Re-save the model or re-download it.") from err


def check_finite_weights(model, source) -> None:
    """:class:`CheckpointError` naming the tensors that hold NaN / Inf (damage inside the tensor data)."""
    import torch

    bad = []
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if tensor.is_floating_point() and tensor.numel() and tensor.device.type != "meta" and not bool(torch.isfinite(tensor).all()):
                bad.append(name)
                if len(bad) == 5:
                    break
    if bad:
        raise CheckpointError(f"{source}: weights hold NaN or Inf ({', '.join(bad)}). {FIX_WEIGHTS}")


def load_safetensors_checked(path: str, *, float_only: bool = False) -> dict:
    """``safetensors.torch.load_file`` after the header check, with typed errors."""
    from safetensors.torch import load_file

    check_safetensors_file(path, float_only=float_only)
    with checkpoint_load_errors(path):
        return load_file(path)


def check_model_path(path, subfolder: str | None = None, *, allow_pickle: bool = False, variant: str | None = None) -> CheckedCheckpoint | None:
    """Alias of :func:`check_checkpoint_folder` for callers (CLI, pipeline) that only want the checks."""
    return check_checkpoint_folder(path, subfolder, allow_pickle=allow_pickle, variant=variant)


__all__ = [
    "CheckedCheckpoint",
    "check_checkpoint_folder",
    "check_model_path",
    "check_config_dict",
    "check_finite_weights",
    "check_safetensors_file",
    "check_safetensors_index",
    "checkpoint_load_errors",
    "dispatch_to_device_map",
    "download_model_folder",
    "find_weights",
    "load_checked_state_dict",
    "load_into_empty_model",
    "load_pickled_state_dict",
    "load_safetensors_checked",
    "load_state_dict_strictly",
    "read_json_object",
    "resolve_model_folder",
]
