"""Notice when a net changes: its weights, its layers or their settings.

A detector keeps things made from its nets' weights between photos: MTCNN's inference copies
(`pipeline.fast.batch_last.BatchLastCache`) and, with several workers, helper processes that are forks
holding the weights of their day (`pipeline.fast.helpers`). Both must be made again after any change
to the nets (a training step, loading weights, an edit by hand), and only then.

`NetVersions` gives a net a *version*: an object that stays the same object while nothing about
the net changes, and is a new one after a change. It compares the net with a copy kept from
the last call: its modules, their settings (``repr``, e.g. a pooling's size) and every weight.
"""

from __future__ import annotations

import numpy as np


class Version:
    """The version of one net at one moment; compare versions with ``is``."""

    __slots__ = ("net_name",)

    def __init__(self, net_name: str):
        self.net_name = net_name

    def __repr__(self) -> str:
        return f"<version of a {self.net_name} at {id(self):#x}>"


class NetVersions:
    """``versions(net)``: the net's version (see the module doc), the same object as at the last
    call when the net has not changed since.

    Comparing costs a pass over the weights; the copy kept is
    as large as the weights.
    """

    def __init__(self):
        self._entries = {}  # id(net) -> (net, its modules, their settings, copies of its weights, Version)

    def __getstate__(self):
        """Pickled empty: a copy starts again from its first call."""
        return {"_entries": {}}

    def __call__(self, net) -> Version:
        modules = [net, *net._descendants()]
        settings = [repr(module) for module in modules]  # e.g. "MaxPool2D(size=3, stride=2, ceil_mode=True)"
        weights = [param.value for _, param in net.named_parameters()]
        entry = self._entries.get(id(net))
        if (entry is not None and entry[0] is net and len(entry[1]) == len(modules)
                and all(a is b for a, b in zip(entry[1], modules)) and entry[2] == settings
                and len(entry[3]) == len(weights) and all(np.array_equal(a, b) for a, b in zip(entry[3], weights))):
            return entry[4]
        version = Version(type(net).__name__)
        self._entries[id(net)] = (net, modules, settings, [w.copy() for w in weights], version)
        return version
