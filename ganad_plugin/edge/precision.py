"""Mixed precision inside an IR: the networks may run in bf16, the evidence arithmetic after them stays in f32.

The networks' convolutions are most of an IR's work and lose little in bf16. The arithmetic after them (the feature
memory's distances, norms, logarithms, standardisation, pooling, the resize and smoothing of the maps) works on
small differences that bf16's 8-bit mantissa rounds away (a local variance taken as E[x^2] - E[x]^2, a smoothed
residual less its background). OpenVINO's CPU plugin keeps a node in its original precision when the node carries
the ``DisablePrecisionConversion`` runtime attribute, which the IR reader restores from the XML;
``mark_evidence_f32`` writes it at export on every layer but the networks' convolutions and activations: the
evidence's own convolutions (the maps' smoothing, the colour statistics' windows) and the networks' activations are
told apart by the module they were traced from, which OpenVINO keeps in the layer's name. ``ganad infer`` then runs
such an IR in bf16 where the CPU has the units (``choose_precision``); an IR without the marks stays in f32. One
exception the plugin cannot hold: OpenVINO turns the feature memory's matrix product (a constant operand) into a
FullyConnected layer, which runs in bf16 despite its mark; the accuracy measured for ``auto`` includes it. What each
choice measured: ``docs/speed.md``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

F32_ATTRIBUTE = {"name": "DisablePrecisionConversion", "version": "0", "value": "dynamic:f16"}
F32_RT_KEY = "DisablePrecisionConversion_0"
# The layers allowed to run at the lower precision: the networks' convolutions (and what feeds them weights), and
# the networks' activations below.
NETWORK_TYPES = frozenset({
    "Convolution", "ConvolutionBackpropData", "GroupConvolution", "FakeQuantize", "Convert", "Const", "Parameter",
    "Result",
})
# Convolutions that belong to the evidence arithmetic, by the traced module in the layer's name
# (``__module.model.scorer.blur/aten::_convolution/Convolution``): they stay in f32 like the rest of it.
EVIDENCE_MODULES = re.compile(r"\.(scorer|colour|memory)\.")
# The networks' own activations and bias additions, by the traced module in the layer's name: left at the lower
# precision with the convolutions around them, OpenVINO need not convert every convolution's output to f32 and back
# (docs/speed.md). The generator's closing tanh (the reconstruction the residual is taken from) stays f32.
NETWORK_MODULES = re.compile(r"__module\.model\.(generator|encoder|discriminator|defect)\w*\.")
NETWORK_ACTIVATIONS = frozenset({"Add", "ReLU", "PReLU"})
PRECISIONS = ("auto", "f32", "bf16", "f16")


def runs_low(layer_type: str, name: str) -> bool:
    """Whether a layer may run at the lower precision: the networks' convolutions and what feeds them weights, and
    the networks' activations and bias additions."""
    if EVIDENCE_MODULES.search(name):
        return False
    return layer_type in NETWORK_TYPES or (layer_type in NETWORK_ACTIVATIONS and bool(NETWORK_MODULES.search(name)))


def mark_evidence_f32(xml: Path) -> int:
    """Mark every layer of the IR ``xml`` but the networks' (``runs_low``) as to be kept in f32, and unmark those;
    rewrites the file. Returns the number of layers changed."""
    tree = ET.parse(xml)
    marked = set_evidence_marks(tree.getroot(), keep_f32=True)
    tree.write(xml, encoding="utf-8", xml_declaration=True)
    return marked


def set_evidence_marks(net: ET.Element, *, keep_f32: bool) -> int:
    """With ``keep_f32``, leave the f32 marks on the layers of an IR's parsed XML ``net`` as this module's rule
    (``runs_low``) puts them, whatever an earlier export's rule left; without, remove every mark. Returns the number
    of layers changed."""
    changed = 0
    for layer in net.iter("layer"):
        wanted = keep_f32 and not runs_low(layer.get("type"), layer.get("name", ""))
        rt_info = layer.find("rt_info")
        if rt_info is None:
            if not wanted:
                continue
            rt_info = ET.SubElement(layer, "rt_info")
        marks = [attribute for attribute in rt_info.findall("attribute") if attribute.get("name") == F32_ATTRIBUTE["name"]]
        if wanted and not marks:
            ET.SubElement(rt_info, "attribute", F32_ATTRIBUTE)
            changed += 1
        elif not wanted and marks:
            for mark in marks:
                rt_info.remove(mark)
            changed += 1
    return changed


def has_f32_evidence(model: Any) -> bool:
    """Whether an OpenVINO ``Model`` carries ``mark_evidence_f32``'s marks (on any layer but the network's)."""
    return any(
        F32_RT_KEY in op.get_rt_info() for op in model.get_ordered_ops()
        if not runs_low(op.get_type_name(), op.get_friendly_name())
    )


def choose_precision(requested: str, model: Any, device_capabilities: list[str]) -> str:
    """The inference precision to compile with: ``requested`` unless it is "auto", which picks bf16 when the device
    has bf16 units and the IR keeps its evidence arithmetic in f32, else f32."""
    if requested not in PRECISIONS:
        msg = f"precision must be one of {PRECISIONS}, got {requested!r}"
        raise ValueError(msg)
    if requested != "auto":
        return requested
    return "bf16" if "BF16" in device_capabilities and has_f32_evidence(model) else "f32"
