"""mouseguard's training package: data sets, the 1D-CNN, fitting, ONNX export, evaluation.

Needs the ``[train]`` extra (torch, onnx, onnxscript, scikit-learn, matplotlib). It cuts
blocks with the agent's own cutter (``agent.blocks``), so training and the live agent see
the same blocks.
"""
