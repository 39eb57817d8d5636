"""Sphinx configuration of the course book (built by ``python -m book.build``, which stages this file).

Everything the pages need is served from the build itself: MathJax comes from the sphinx-mathjax-offline
package, widget outputs were turned into static snapshots when the notebooks were staged
(``book/static_widgets.py``), and the widget scripts myst-nb would load from a CDN are switched off.
Notebooks are never executed.
"""

project = "Advanced Deep Learning, hands on"
author = "the course's authors"
copyright = "the course's authors, MIT licence"

extensions = ["myst_nb", "sphinx-mathjax-offline"]
html_theme = "sphinx_book_theme"
html_title = project
html_theme_options = {
    "home_page_in_toc": True,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "show_toc_level": 2,
}
html_last_updated_fmt = None
# each page's download button gives its notebook as staged (widget outputs already static snapshots)
html_copy_source = True
html_sourcelink_suffix = ""
# Search results without a text excerpt: the excerpt is fetch()ed from the page, which a browser refuses for
# a book opened from file:// (the results themselves come from searchindex.js and work offline).
html_show_search_summary = False

# downloads only, not pages: the exercise and solution notebooks and the lessons exactly as stored
exclude_patterns = ["_build", "exercises", "solutions", "stored", "**.ipynb_checkpoints"]

# MyST and notebooks: never execute, render the stored outputs.
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
# No widget JavaScript: no require.js and no @jupyter-widgets/html-manager from a CDN; a widget view that
# was not snapshotted falls back to its text form instead of an empty <script>.
nb_ipywidgets_js = {}
nb_mime_priority_overrides = [
    ("html", "application/vnd.jupyter.widget-view+json", None),
    ("html", "application/vnd.jupyter.widget-state+json", None),
]
# MathJax 3 from sphinx-mathjax-offline (it sets mathjax_path to its local copy); myst adds its classes here.
mathjax3_config = {"options": {}}

# Nothing at build time may reach the network.
intersphinx_mapping = {}
linkcheck_ignore = [r".*"]
