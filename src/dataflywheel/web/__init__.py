"""The web page of ``flywheel serve`` and the HTML report of ``flywheel report``.

* :mod:`.routes`: the pages (``/``, ``/jobs/{id}``), the parts they refresh, the login form;
* :mod:`.pages`: the I/O edge, reading the job store and files for the views;
* :mod:`.views`: typed view models built from the store's records (pure);
* :mod:`.charts` (SVG), :mod:`.diff` (answer differences), :mod:`.format` (numbers, money, times): pure;
* :mod:`.render`: HTML from the views through the package's templates; ``static/`` holds the stylesheet and
  the one script, served from the package (no CDN, no build step).
"""
