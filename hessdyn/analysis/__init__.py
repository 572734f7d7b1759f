"""``hessdyn analyze``: Hessian spectra of every checkpoint of a run, trajectory metrics, tables on disk.

This layer composes the pure numerical packages (curvature, solvers, trajectory, reparam) with the files
training wrote; it is the only place that knows both.
"""
