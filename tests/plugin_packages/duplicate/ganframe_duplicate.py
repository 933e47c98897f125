"""A plugin that registers an architecture name ganframe-testplugin already holds."""

from ganframe import hookimpl


@hookimpl
def ganframe_register_architectures(register):
    register("tiny", lambda spec, options: None, "Clashes with ganframe-testplugin's tiny.")


@hookimpl
def ganframe_register_datasets(register):
    register("dupdata", lambda context, options: None, "Dropped with the rest of this plugin.")
