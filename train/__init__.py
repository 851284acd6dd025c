"""COCO training and evaluation of LPN, reproducing the paper's recipe (LPN_SPEC §2-§4).

``python -m train.train`` trains (optionally in rounds), ``python -m train.evaluate`` runs the
paper's test protocol. Uses lpn_core for the model, codec and crops; never imports app/.
"""
