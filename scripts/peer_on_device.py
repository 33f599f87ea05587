#!/usr/bin/env python3
"""Runs the Python peer (shared/bench/ref_train.py, unchanged) on a CUDA device in bf16, as our
trainer runs there: every tensor it creates lands on the device (torch.set_default_device) and its
forward passes run under torch.autocast(bfloat16); weights and optimizer state stay fp32. The peer
keeps its one .item() per step, as a user's loop would. usage: peer_on_device.py PEER [peer args...]"""
import runpy, sys

import torch

if len(sys.argv) < 2:
    sys.exit(__doc__)
if not torch.cuda.is_available():
    sys.exit("peer_on_device: CUDA is not available to this PyTorch")
torch.set_default_device("cuda")
torch.autocast("cuda", dtype=torch.bfloat16).__enter__()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
