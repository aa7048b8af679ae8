"""The parts of meta-training, each in a module of its own; ``fastadapt.train.meta_train`` puts them together.

``settings`` (``TrainConfig``), ``schedule`` (learning-rate schedules), ``folder`` (the run's files),
``clock`` (training time and its budget), ``checkpoints`` (``last.pt`` and ``best.pt``), ``validation``
(validation records and the best state), ``metrics`` (train records), ``progress`` (the progress bar),
``signals`` (stopping on SIGINT/SIGTERM), ``averaging`` (the gradients' mean over processes),
``divergence`` (non-finite losses and gradients), ``update`` (the one meta-update and its validation, by the kind
of learner: supervised, or meta-RL's own outer step) and ``loop`` (the loop that calls them).
"""
