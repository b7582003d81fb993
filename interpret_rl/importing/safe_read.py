"""Reading files made elsewhere without running anything in them.

A ``torch.save`` file is a zip whose ``data.pkl`` is a pickle: loading a pickle can call any
function it names. Two locks guard it: before torch sees the bytes, every global the pickle names
is checked against a short list of what a state dict of tensors needs (the opcodes are parsed by
``pickletools``, which executes nothing); then ``torch.load(..., weights_only=True)`` loads it with
torch's own restricted unpickler. The bytes checked must be the bytes torch loads: torch takes a
file for a zip only when it starts with a zip header (else it unpickles the start as a legacy
file), while Python's ``zipfile`` also finds a zip appended to other bytes, so a torch file must
start with its first member. Zip members are read with size limits checked on the bytes actually
read, not on the sizes the archive claims, and a torch file's members must be stored uncompressed
(as ``torch.save`` writes them), so its tensors cannot inflate past the file's own size.
"""

from __future__ import annotations

import io
import pickletools
import zipfile

# Ample for what imports (Nature CNN and MLP policies: an SB3 Atari policy.pth with its three
# extractor copies is about 20 MB) and small enough that a deflated member that inflates to the
# limit (a zip bomb of a few hundred kB) costs a passing allocation, not the machine's memory.
MAX_MEMBER_BYTES = 256 << 20
MAX_JSON_BYTES = 64 << 20

_STORAGES = ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
SAFE_GLOBALS = frozenset(
    ["collections OrderedDict", "torch._utils _rebuild_tensor_v2", "torch._utils _rebuild_parameter"]
    + [f"torch {kind}Storage" for kind in _STORAGES])
"""``module name`` of every global a state dict of tensors pickles (torch.save, protocol 2)."""

# Opcodes that fetch a callable some other way than GLOBAL: never in a torch.save state dict.
_REFUSED_OPCODES = {"STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4"}


class ImportRefusedError(ValueError):
    """A file that cannot be imported; the message names it and says why, in one line."""


def read_member(archive: zipfile.ZipFile, name: str, limit: int, where: str) -> bytes:
    """The bytes of ``name`` in ``archive``, refusing more than ``limit`` of them."""
    try:
        with archive.open(name) as member:
            data = member.read(limit + 1)
    except KeyError:
        raise ImportRefusedError(f"{where}: the archive holds no {name}") from None
    except (zipfile.BadZipFile, OSError, NotImplementedError, EOFError) as err:
        raise ImportRefusedError(f"{where}: cannot read {name} from the archive ({err})") from None
    if len(data) > limit:
        raise ImportRefusedError(f"{where}: {name} is larger than {limit:,} bytes")
    return data


def check_pickle_globals(data: bytes, where: str) -> None:
    """Refuse a pickle that names anything but tensors, storages and OrderedDict."""
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name == "GLOBAL" and arg not in SAFE_GLOBALS:
                raise ImportRefusedError(
                    f"{where}: refused: its pickle calls {str(arg).replace(' ', '.')}, which is not part of a "
                    f"state dict of tensors (it could run code when loaded); nothing was loaded")
            if opcode.name in _REFUSED_OPCODES:
                raise ImportRefusedError(f"{where}: refused: its pickle uses opcode {opcode.name}, which a "
                                         f"torch.save state dict never does; nothing was loaded")
    except ImportRefusedError:
        raise
    except Exception as err:  # pickletools raises ValueError and others on malformed bytes
        raise ImportRefusedError(f"{where}: not a valid pickle ({err})") from None


def load_state_dict(data: bytes, where: str) -> dict:
    """A ``{name: tensor}`` state dict from ``torch.save`` bytes (zip format) or safetensors bytes."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return _load_safetensors(data, where)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    except zipfile.BadZipFile as err:
        raise ImportRefusedError(f"{where}: not a readable torch.save file ({err})") from None
    if len(pickles) != 1:
        raise ImportRefusedError(f"{where}: not a torch.save file (a zip holding one <name>/data.pkl)")
    _check_torch_zip_layout(data, members, where)
    check_pickle_globals(read_member(archive, pickles[0], MAX_MEMBER_BYTES, where), where)
    import torch

    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds (UnpicklingError, RuntimeError...): all mean "refused"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ImportRefusedError(f"{where}: torch refused to load it with weights_only=True ({first})") from None
    return _tensors_only(loaded, where)


def _check_torch_zip_layout(data: bytes, members: list[zipfile.ZipInfo], where: str) -> None:
    """Refuse a zip that torch would read otherwise than ``zipfile`` does, or that inflates."""
    if not data.startswith(b"PK\x03\x04") or min(m.header_offset for m in members) != 0:
        raise ImportRefusedError(f"{where}: refused: bytes precede the zip (torch would load those instead of "
                                 f"the checked zip); a torch.save file starts with its first member")
    packed = [m.filename for m in members if m.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise ImportRefusedError(f"{where}: refused: member {packed[0]} is compressed (it could inflate past any "
                                 f"limit when torch reads it); torch.save stores its members uncompressed")
    if sum(m.file_size for m in members) > len(data):
        raise ImportRefusedError(f"{where}: refused: its members claim more bytes than the file holds")


def _load_safetensors(data: bytes, where: str) -> dict:
    from safetensors.torch import load

    try:
        return load(data)
    except Exception as err:  # SafetensorError, ValueError... : not a safetensors file either
        raise ImportRefusedError(f"{where}: neither a zip (stable-baselines3 model, torch.save state dict) nor "
                                 f"a safetensors file ({str(err).splitlines()[0] if str(err) else err!r})") from None


def _tensors_only(loaded, where: str) -> dict:
    import torch

    if not isinstance(loaded, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in loaded.items()):
        raise ImportRefusedError(f"{where}: holds a {type(loaded).__name__}, not a state dict "
                                 f"({{name: tensor}}); save model.state_dict()")
    return dict(loaded)
