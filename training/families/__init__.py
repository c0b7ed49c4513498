"""Model families: what turns a user's input rows into P(genuine), one subpackage each.

Every family's model follows one interface (scikit-learn's habit: settings in the
constructor, no global state):

* ``name`` (the manifest's ``family``), ``input_kind`` (the agent's extractor,
  :data:`agent.model_inputs.KINDS`), ``row`` (what one input row is: block, segment, window);
* ``fit(genuine, impostors) -> self``;
* ``score(rows) -> P(genuine)`` per row, as the exported ONNX model computes it;
* ``to_onnx() -> bytes`` and ``export_fields(parity_rows)`` (architecture, input and output
  description, and the reference the ONNX file's parity is checked against).

One user-model path (:mod:`training.user_model`) splits a user's data, fits any family,
calibrates its decision and writes its model directory. A new family is a subpackage here, a
``fit_*`` in :mod:`training.user_model.fit` and a line in :data:`FAMILIES`.
"""

#: ``--model-family`` name -> what it is, for ``--help`` (the classes import torch; this does not).
FAMILIES = {
    "cnn": "blocks + the two-tower 1D-CNN (default)",
    "features": "segment features + MLP with CGAN unknowns",
    "patterns": "mouse-action patterns (PrefixSpan) + one-class detector",
}
