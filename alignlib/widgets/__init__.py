"""Interactive explorers for the notebooks, one module per family; a module imports only what it
shows (the plan explorer does not import the trainer).

* :mod:`~alignlib.widgets.base` -- the :class:`~alignlib.widgets.base.Explorer` base: display, title, controls;
* :mod:`~alignlib.widgets.plans` -- ``TransportPlanExplorer``: a transport plan against the true
  correspondence, pairs from ``SyntheticPairSource`` or ``DataClipSource`` (notebooks 01, 05);
* :mod:`~alignlib.widgets.mmd` -- ``MMDExplorer``: MMD^2 between two Gaussians against the shift and
  the bandwidth (notebook 02);
* :mod:`~alignlib.widgets.ssm` -- ``ImpulseResponseExplorer``: an SSM impulse response and a trained
  model's ``Delta_t`` (notebook 03); ``CoupledPulseExplorer``: a pulse through coupled state chains
  (notebook 04);
* :mod:`~alignlib.widgets.trained` -- ``TrainedModelSource`` (the plan explorer on trained models) and
  ``ExpertActivationBrowser``: a trained AlignMamba-2's expert shares (notebook 07);
* :mod:`~alignlib.widgets.learned` -- ``LearnedPlanExplorer``: a model's own frame-to-word plan over
  clips and epochs of training, against the true words (notebook 10).
"""
