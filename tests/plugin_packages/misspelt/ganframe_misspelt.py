"""A plugin with a misspelt hook (singular)."""

from ganframe import hookimpl


@hookimpl
def ganframe_register_architecture(register):
    register("misspelt", lambda spec, options: None, "Never registered.")
