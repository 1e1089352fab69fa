"""Training code with no Django in it: a TrainConfig in, a model folder, report and TrainResult out.

Heavy libraries (torch, transformers, trl, peft) are imported by the submodules that need them, so importing
`training.ml.config` from the web process stays cheap.
"""
