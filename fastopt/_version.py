# The one place the version is written: pyproject.toml reads it ([tool.setuptools.dynamic], from
# this file's text, without importing the package and its compiled extension) and
# fastopt/__init__.py re-exports it.
__version__ = "0.1.0"
