"""Local ``evaluate`` metric scripts; load them with :func:`pyratok_hf.metrics.load_metric`.

The ``__init__.py`` files only make setuptools ship these scripts inside wheels; ``evaluate`` itself copies
each script into its module cache and imports it from there, which is why the scripts import the maths from
the installed package (``pyratok_hf.metrics.functional``) rather than relatively.
"""
