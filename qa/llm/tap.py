"""Reading hidden states out of llama.cpp as it decodes: the answer decision
(:mod:`qa.trust.answerability`) reads middle-to-late layers, which llama.cpp's Python API does
not expose, so a graph evaluation callback copies them."""

from __future__ import annotations

import ctypes
from typing import Any

TAPPED_LAYERS = (14, 21)
"""Transformer layers whose output is read besides the final hidden state: answerability is
decoded best from middle-to-late layers (Slobodkin et al., 2023)."""


class LayerTap:
    """Copies chosen layers' output and the final normed hidden state (``result_norm``) of
    each decode via llama.cpp's graph evaluation callback (``cb_eval``); idle (one name check
    per node) unless ``on``. Layer outputs have a row per batch token, ``final`` a row per
    output token."""

    def __init__(self, layers: tuple[int, ...]) -> None:
        import llama_cpp
        from llama_cpp._ggml import libggml

        self.names = {f"l_out-{i}".encode(): f"l{i}" for i in layers}
        self.names[b"result_norm"] = "final"
        self.on = False
        self.latest: dict[str, Any] = {}
        self.n_embd = 0
        self._name = libggml.ggml_get_name
        self._name.restype, self._name.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
        self._numel = libggml.ggml_nelements
        self._numel.restype, self._numel.argtypes = ctypes.c_int64, [ctypes.c_void_p]
        self._data = libggml.ggml_get_data_f32
        self._data.restype = ctypes.POINTER(ctypes.c_float)
        self._data.argtypes = [ctypes.c_void_p]
        self.callback = llama_cpp.ggml_backend_sched_eval_callback(self._observe)

    def _observe(self, tensor: int, ask: bool, _user_data: int) -> bool:
        if ask:  # "do you want this node's result?"
            return self.on and self._name(tensor) in self.names
        import numpy as np

        data = np.ctypeslib.as_array(self._data(tensor), shape=(self._numel(tensor),))
        self.latest[self.names[self._name(tensor)]] = data.reshape(-1, self.n_embd).copy()
        return True  # False would stop the computation
