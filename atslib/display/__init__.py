"""The display wing: figures (``plots``), widgets and live runs for JupyterLab (``widgets``,
``live``, ``progress``), the race of schedulers (``race``) and the demos (``demo``). The library
returns data; these modules show it. Needs the ``display`` extra (matplotlib, seaborn, tqdm,
ipywidgets in JupyterLab)."""
