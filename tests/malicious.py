"""Files built to run code when loaded: each payload creates a marker file, so a test can tell
whether it ran. `tests/test_untrusted_files.py` proves the payloads live (they run when loaded the
unsafe way) and that no loading path of the suite runs them without --trust-checkpoint."""

from __future__ import annotations

import builtins
import io
import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

Members = dict[str, bytes]


class Payload:
    """Unpickling this calls `exec`, which creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').close()",))


def torch_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def wrappings(marker: Path, real_state: dict[str, torch.Tensor]) -> dict[str, object]:
    """The payload bare, under `state_dict`, and mixed into a real state dict."""
    return {"bare": Payload(marker), "under-state-dict": {"state_dict": Payload(marker)},
            "mixed": {**real_state, "evil": Payload(marker)}}


def write_raw_pickle(path: Path, marker: Path) -> Path:
    with open(path, "wb") as handle:
        pickle.dump(Payload(marker), handle)
    return path


def rewrite_zip(src: Path, dst: Path, edit: Callable[[Members], None]) -> Path:
    with zipfile.ZipFile(src) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    edit(members)
    with zipfile.ZipFile(dst, "w") as out:
        for name, data in members.items():
            out.writestr(name, data)
    return dst


def _member(members: Members, suffix: str) -> str:
    return next(name for name in members if name.endswith(suffix))


def _add_constant(members: Members, path_name: str, blob: bytes) -> None:
    config_name = _member(members, "model_constants_config.json")
    config = json.loads(members[config_name])
    config["config"]["evil"] = {"path_name": path_name, "is_param": False, "use_pickle": True, "tensor_meta": None}
    members[config_name] = json.dumps(config).encode()
    members[config_name.rsplit("/", 1)[0] + "/" + path_name] = blob


def export_edits(marker: Path) -> dict[str, Callable[[Members], None]]:
    """Ways to make a clean torch.export archive run code in `torch.export.load`."""

    def pickled_weight(members: Members) -> None:
        config_name = _member(members, "model_weights_config.json")
        config = json.loads(members[config_name])
        _, meta = next(iter(config["config"].items()))
        meta["use_pickle"] = True
        members[config_name] = json.dumps(config).encode()
        members[config_name.rsplit("/", 1)[0] + "/" + meta["path_name"]] = torch_pickle(Payload(marker))

    def sample_inputs(members: Members) -> None:
        members[_member(members, "sample_inputs/model.pt")] = torch_pickle(Payload(marker))

    def pickled_constant(members: Members) -> None:
        _add_constant(members, "tensor_constant_0", torch_pickle(Payload(marker)))

    def opaque_constant(members: Members) -> None:
        _add_constant(members, "opaque_obj_0", pickle.dumps(Payload(marker)))

    def shape_expression(members: Members) -> None:
        name = _member(members, "models/model.json")
        evil = f"__import__('builtins').exec(\\\"open({str(marker)!r}, 'w').close()\\\")"
        members[name] = members[name].decode().replace("Symbol('s", evil + " + Symbol('s", 1).encode()

    def call_target(members: Members) -> None:
        name = _member(members, "models/model.json")
        members[name] = members[name].replace(b'"torch.ops.aten.linear.default"', b'"torch.os.system"')

    def guards_code(members: Members) -> None:  # `.module()` hands these strings to `exec`
        name = _member(members, "models/model.json")
        program = json.loads(members[name])
        program["guards_code"] = [f"__import__('builtins').open({str(marker)!r}, 'w').close() is None"]
        members[name] = json.dumps(program).encode()

    return {"pickled-weight": pickled_weight, "sample-inputs": sample_inputs, "pickled-constant": pickled_constant,
            "opaque-constant": opaque_constant, "shape-expression": shape_expression, "call-target": call_target,
            "guards-code": guards_code}


def export_model(module: torch.nn.Module, path: Path, example: torch.Tensor) -> Path:
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.export.save(torch.export.export(module.eval(), (example,), dynamic_shapes=({0: batch},)), str(path))
    return path


def torchscript_edits(marker: Path) -> dict[str, Callable[[Members], None]]:
    """TorchScript archives carrying a payload in an extra file, or as their data pickle."""

    def extra_file(members: Members) -> None:
        root = next(iter(members)).split("/")[0]
        members[f"{root}/extra/evil.pkl"] = pickle.dumps(Payload(marker))

    def data_pickle(members: Members) -> None:
        members[_member(members, "/data.pkl")] = pickle.dumps(Payload(marker), protocol=2)

    return {"extra-file": extra_file, "data-pickle": data_pickle}
