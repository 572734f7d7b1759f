"""``hessdyn report``: figures, the CSV behind each, and an HTML page comparing groups of runs.

Modules, in the order data flows through them:

* :mod:`~hessdyn.report.runs` finds run directories and labels each by the group-by config key;
* :mod:`~hessdyn.report.tables` reads every run's ``metrics/train.csv`` and analysis tables;
* :mod:`~hessdyn.report.aggregate` turns them into tidy frames of mean and band over seeds, cut to each
  metric's range by :mod:`~hessdyn.report.bands`;
* :mod:`~hessdyn.report.figures` (a package by topic) draws one figure per function, styled by
  :mod:`~hessdyn.report.style`;
* :mod:`~hessdyn.report.page` renders ``index.html``; :mod:`~hessdyn.report.provenance` the settings;
* :mod:`~hessdyn.report.build` writes the folder, :mod:`~hessdyn.report.folders` swaps it in whole;
  :mod:`~hessdyn.report.command` is the Hydra task.

Decisions a reader of the figures should know:

* Band: two-sided t-interval of the mean over the seeds of a group, at ``report.band`` (95%), from the
  runs with a finite value at that point; one seed gives a line without band. The band drawn is cut to
  the metric's valid range (:mod:`~hessdyn.report.bands`; on log axes a decade below the mean at most);
  each figure's CSV has the interval (``lo``, ``hi``) and the drawn band (``band_lo``, ``band_hi``).
  Panels with several ranks band rank 1 only; aging curves and event counts draw no band (it is in the CSV).
* Means use completed and running runs (a running run up to its current step). Diverged and failed
  runs are listed in the runs table and drawn individually (thin dashed line ending in ×) in every
  step-indexed line figure, training and curvature alike, so the approach to divergence stays visible;
  they enter no mean, band, heatmap, stacked area or summary. The summary table uses completed runs.
* Curvature figures use the analyzed runs only; a run not analyzed yet is listed and left out of them.
* A figure whose data no run has is not drawn; the page lists it as not computed.
"""
