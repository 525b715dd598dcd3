"""Checkpoint and weight-file writers for the fixtures: a PyTorch-Lightning style checkpoint with
OmegaConf-looking hyper-parameters (without omegaconf installed), Hugging Face BERT folders
(pytorch_model.bin and hand-written model.safetensors) and hand-written malicious pickles.

Malicious files are only ever WRITTEN here (as bytes); nothing in this repository loads them with
pickle. Their payload is harmless (it would create /tmp/carzero-evil-marker-*).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import sys
import types
import typing
import zipfile
from collections import OrderedDict
from typing import Dict

import numpy as np
import torch

# ----------------------------------------------------------------------------------------------
# Fake omegaconf classes: pickled GLOBALs read `omegaconf.dictconfig DictConfig` etc.
# ----------------------------------------------------------------------------------------------


def _fake_module(name: str) -> types.ModuleType:
    if name in sys.modules and getattr(sys.modules[name], "__carzero_fake__", False):
        return sys.modules[name]
    if name in sys.modules:
        raise RuntimeError(f"a real {name} is importable; refusing to shadow it")
    m = types.ModuleType(name)
    m.__carzero_fake__ = True
    sys.modules[name] = m
    return m


def _install_fake_omegaconf():
    root = _fake_module("omegaconf")
    mods = {n: _fake_module(f"omegaconf.{n}") for n in ("dictconfig", "listconfig", "base", "nodes")}
    for n, m in mods.items():
        setattr(root, n, m)

    def mk(modname, clsname):
        cls = type(clsname, (object,), {"__module__": f"omegaconf.{modname}"})
        cls.__qualname__ = clsname
        setattr(mods[modname], clsname, cls)
        return cls

    return {
        "DictConfig": mk("dictconfig", "DictConfig"),
        "ListConfig": mk("listconfig", "ListConfig"),
        "ContainerMetadata": mk("base", "ContainerMetadata"),
        "Metadata": mk("base", "Metadata"),
        "AnyNode": mk("nodes", "AnyNode"),
    }


_OC = None


def omegaconf_like(obj, parent=None, key=None):
    """Build an object graph shaped like a pickled OmegaConf config (DictConfig/ListConfig with
    ContainerMetadata, AnyNode leaves with Metadata, parent back-references, typing.Any refs)."""
    global _OC
    if _OC is None:
        _OC = _install_fake_omegaconf()
    oc = _OC
    if isinstance(obj, dict):
        node = oc["DictConfig"]()
        md = oc["ContainerMetadata"]()
        md.__dict__.update({"ref_type": typing.Any, "object_type": dict, "optional": True, "key": key,
                            "flags": {}, "flags_root": False, "resolver_cache": {},
                            "key_type": typing.Any, "element_type": typing.Any})
        node.__dict__.update({"_metadata": md, "_parent": parent, "_content": {}})
        for k, v in obj.items():
            node._content[k] = omegaconf_like(v, node, k)
        return node
    if isinstance(obj, list):
        node = oc["ListConfig"]()
        md = oc["ContainerMetadata"]()
        md.__dict__.update({"ref_type": typing.Any, "object_type": list, "optional": True, "key": key,
                            "flags": {}, "flags_root": False, "resolver_cache": {},
                            "key_type": int, "element_type": typing.Any})
        node.__dict__.update({"_metadata": md, "_parent": parent, "_content": []})
        for i, v in enumerate(obj):
            node._content.append(omegaconf_like(v, node, i))
        return node
    leaf = oc["AnyNode"]()
    md = oc["Metadata"]()
    md.__dict__.update({"ref_type": typing.Any, "object_type": None, "optional": True, "key": key, "flags": {}})
    leaf.__dict__.update({"_metadata": md, "_parent": parent, "_val": obj})
    return leaf


def original_cfg_dict(c) -> dict:
    """The config of configs/mimic_pretrain_llm_dqn_wo_self_atten_mlp_gl.yaml (sizes from c)."""
    return {
        "experiment_name": "CARZero_Globa_local_MLP",
        "phase": "pretrain_llm_dqn_wo_self_atten_mlp_gl",
        "trial_name": None,
        "lightning": {
            "trainer": {"gpus": "0", "max_epochs": 15, "distributed_backend": "dp", "gradient_clip_val": 0.25,
                        "lr": 5e-05, "precision": 16, "reload_dataloaders_every_epoch": True},
            "checkpoint_callback": {"monitor": "val_loss", "dirpath": "./data/ckpt", "save_last": True,
                                    "mode": "min", "save_top_k": 1},
        },
        "model": {
            "norm": False,
            "CARZero": {"local_loss_weight": 1.0, "global_loss_weight": 1.0, "ce_loss_weight": 1.0,
                        "temp1": 4.0, "temp2": 5.0, "temp3": 10.0},
            "vision": {"model_name": "vit_b_16", "base": "transformer", "freeze_cnn": False, "pretrained": True},
            "text": {"bert_type": "Laihaoran/BioClinicalMPBERT", "last_n_layers": c.text.last_n_layers,
                     "aggregate_method": "sum", "norm": False, "embedding_dim": c.text.width,
                     "freeze_bert": False, "agg_tokens": True},
            "fusion": {"d_model": c.head.width, "H": c.head.heads, "N": c.head.depth, "dropout": 0.1,
                       "state_prob": 1, "class_num": 1, "decoder_number_layer": c.head.depth},
        },
        "data": {"dataset": "pretrain_xh", "text": {"word_num": c.text.max_length, "captions_per_image": 5,
                                                    "full_report": False},
                 "image": {"imsize": c.resize}},
        "transforms": {"norm": "CXR_MAE", "random_crop": {"crop_size": c.crop}, "random_horizontal_flip": 0.3,
                       "random_affine": {"degrees": 30, "translate": [0.1, 0.1], "scale": [0.9, 1.1]},
                       "color_jitter": {"bightness": [0.8, 1.2], "contrast": [0.8, 1.2]}},
        "train": {"update_interval": 1000, "batch_size": 256, "num_workers": 0, "nvis": 4, "rand_vis": False,
                  "optimizer": {"name": "Adam", "weight_decay": 1e-06},
                  "scheduler": {"name": "plateau", "monitor": "val_loss", "inerval": "epoch", "frequency": 1}},
    }


def lightning_checkpoint(state_dict: Dict[str, torch.Tensor], cfg_dict: dict, with_optimizer: bool = True,
                         epoch: int = 7, global_step: int = 12345) -> dict:
    sd = OrderedDict(("CARZero." + k, v) for k, v in state_dict.items())
    ck = {
        "epoch": epoch,
        "global_step": global_step,
        "pytorch-lightning_version": "1.4.2",
        "state_dict": sd,
        "callbacks": {
            "ModelCheckpoint": {  # PL keeps a 0-dim tensor here
                "monitor": "val_loss",
                "best_model_score": torch.tensor(1.2345678),
                "best_model_path": "./data/ckpt/CARZero_Globa_local_MLP/epoch=7-step=12345.ckpt",
                "current_score": torch.tensor(1.2345678),
                "dirpath": "./data/ckpt/CARZero_Globa_local_MLP",
            }
        },
        "lr_schedulers": [{"factor": 0.5, "patience": 5, "best": 1.2345678, "num_bad_epochs": 0,
                           "mode": "min", "threshold": 1e-4, "cooldown": 0, "last_epoch": 7,
                           "_last_lr": [5e-05]}],
        # the original reads cfg = ckpt["hyper_parameters"]; cfg.model...: the config itself
        "hyper_parameters": omegaconf_like(cfg_dict),
    }
    if with_optimizer:
        params = [v for k, v in state_dict.items() if v.is_floating_point() and not k.endswith("position_ids")]
        state = {}
        for i, p in enumerate(params[:6]):  # a few, enough to look real
            state[i] = {"step": 12345, "exp_avg": torch.zeros_like(p) + 1e-3, "exp_avg_sq": torch.zeros_like(p) + 1e-6}
        ck["optimizer_states"] = [{"state": state, "param_groups": [
            {"lr": 5e-05, "betas": (0.5, 0.999), "eps": 1e-08, "weight_decay": 1e-06, "amsgrad": False,
             "params": list(range(len(params)))}]}]
    return ck


def save_zip(obj, path: str, archive_name_from_path: bool = False):
    """torch.save in zip format. torch 1.13 names the top folder after the file stem when given a
    path, and 'archive' when given a buffer; both occur in the wild, so we can produce both."""
    if archive_name_from_path:
        torch.save(obj, path)
    else:
        b = io.BytesIO()
        torch.save(obj, b)
        with open(path, "wb") as f:
            f.write(b.getvalue())


# ----------------------------------------------------------------------------------------------
# safetensors (hand-written) and tensor digests
# ----------------------------------------------------------------------------------------------

_ST_DTYPE = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
             torch.int32: "I32", torch.uint8: "U8", torch.float64: "F64"}


def tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def write_safetensors(tensors: "OrderedDict[str, torch.Tensor]", path: str, metadata=None):
    header = OrderedDict()
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs = []
    off = 0
    for k, t in tensors.items():
        b = tensor_bytes(t)
        header[k] = {"dtype": _ST_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def tensor_index(sd: "OrderedDict[str, torch.Tensor]") -> list:
    out = []
    for k, t in sd.items():
        out.append({"name": k, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                    "sha256": hashlib.sha256(tensor_bytes(t)).hexdigest()})
    return out


# ----------------------------------------------------------------------------------------------
# Malicious pickles (hand-assembled bytes; never unpickled here)
# ----------------------------------------------------------------------------------------------

PROTO2 = b"\x80\x02"
STOP = b"."


def _binunicode(s: str) -> bytes:
    b = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(b)) + b


def _short_binunicode(s: str) -> bytes:
    b = s.encode("utf-8")
    return b"\x8c" + struct.pack("<B", len(b)) + b


def evil_pickles(marker_dir: str = "/tmp") -> Dict[str, bytes]:
    m = lambda tag: f"{marker_dir}/carzero-evil-marker-{tag}"  # noqa: E731
    out = {}
    # GLOBAL 'posix system' + REDUCE, at top level (what `os.system` pickles as on Linux)
    out["system"] = PROTO2 + b"cposix\nsystem\n" + _binunicode(f"touch {m('system')}") + b"\x85R" + STOP
    # GLOBAL 'os system' inside a dict that also looks like a checkpoint
    out["os-system-in-dict"] = (PROTO2 + b"}q\x00(" + _binunicode("state_dict") + b"}q\x01"
                                + _binunicode("hyper_parameters") + b"cos\nsystem\n"
                                + _binunicode(f"touch {m('os-system-in-dict')}") + b"\x85R" + b"u" + STOP)
    # builtins.eval
    out["eval"] = (PROTO2 + b"cbuiltins\neval\n"
                   + _binunicode(f"__import__('os').system('touch {m('eval')}')") + b"\x85R" + STOP)
    # subprocess.Popen with an argv list
    out["popen"] = (PROTO2 + b"csubprocess\nPopen\n" + b"](" + _binunicode("touch")
                    + _binunicode(m("popen")) + b"e\x85R" + STOP)
    # protocol 0 INST opcode
    out["inst"] = b"(S'touch " + m("inst").encode() + b"'\nios\nsystem\n."
    # protocol 4 STACK_GLOBAL with a FRAME
    body = (_short_binunicode("os") + _short_binunicode("system") + b"\x93"
            + _short_binunicode(f"touch {m('stack-global')}") + b"\x85R" + STOP)
    out["stack-global"] = b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body
    # BUILD on an object with a __setstate__-less class + builtins.exec via OBJ-like NEWOBJ
    out["newobj-exec"] = (PROTO2 + b"cbuiltins\nexec\n"
                          + _binunicode(f"import os; os.system('touch {m('newobj-exec')}')")
                          + b"\x85R" + STOP)
    return out


def write_evil_zip(path: str, pkl: bytes, top: str = "archive", with_storage: bool = True):
    def put(z, name, data):  # fixed timestamp: byte-identical on every run
        z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        put(z, f"{top}/data.pkl", pkl)
        if with_storage:
            put(z, f"{top}/data/0", struct.pack("<4f", 1, 2, 3, 4))
        put(z, f"{top}/version", b"3\n")


def evil_state_dict_pickle(marker_dir: str = "/tmp") -> bytes:
    """A real-looking state dict whose one legit tensor is followed by a REDUCE of os.system
    stored as a value: OrderedDict({'w': tensor(4 floats), 'evil': os.system('touch ...')})."""
    pid = (b"(" + _binunicode("storage") + b"ctorch\nFloatStorage\n" + _binunicode("0") + _binunicode("cpu")
           + b"K\x04" + b"tq\x01Q")  # BINPERSID
    tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n(" + pid + b"K\x00" + b"K\x04\x85" + b"K\x01\x85" + b"\x89"
              + b"ccollections\nOrderedDict\n)R" + b"tR")
    return (PROTO2 + b"ccollections\nOrderedDict\n)R(" + _binunicode("w") + tensor + _binunicode("evil")
            + b"cposix\nsystem\n" + _binunicode(f"touch {marker_dir}/carzero-evil-marker-state-dict") + b"\x85R"
            + b"u" + STOP)
