"""Block scoring with onnxruntime: P(genuine) for each block.

One session per model, reused for every call, on one thread: a block is ~0.8 M multiply-adds,
far too small for threads to pay off, and the agent must not compete with the user's work.
"""

from __future__ import annotations

import numpy as np

from agent.model_dir import ModelDir, ModelError


class Scorer:
    def __init__(self, model: ModelDir):
        import onnxruntime as ort  # imported here: the CLI's --help should not pay for it

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(model.onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{model.onnx_path}: onnxruntime cannot load it ({exc})") from None
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if model.input_name not in inputs or model.output_name not in outputs:
            raise ModelError(
                f"{model.onnx_path}: ONNX input/output names do not match the manifest "
                f"({model.input_name!r} -> {model.output_name!r})"
            )
        shape = inputs[model.input_name].shape
        declared = model.manifest["onnx"]["input"].get("shape")
        if model.spec is not None:
            declared = [None, model.spec.channels, model.spec.size]
        if declared is None or len(shape) != len(declared) or shape[1:] != list(declared[1:]):
            raise ModelError(
                f"{model.onnx_path}: ONNX input shape {shape} does not fit the manifest's {declared}"
            )
        self.model = model
        self._input = model.input_name
        self._output = [model.output_name]

    def score(self, blocks: np.ndarray) -> np.ndarray:
        """P(genuine) for each input row (a block ``(channels, size)`` for the 1D-CNN, a
        feature vector for other model families); an empty batch gives ``[]``."""
        if len(blocks) == 0:
            return np.empty(0, dtype=np.float32)
        (p,) = self.session.run(self._output, {self._input: np.ascontiguousarray(blocks, np.float32)})
        return p.reshape(-1)
