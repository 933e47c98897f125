"""A plugin whose hook registers one architecture and then raises."""

from ganframe import hookimpl


@hookimpl
def ganframe_register_architectures(register):
    register("halfmade", lambda spec, options: None, "Registered just before the hook fails.")
    raise RuntimeError("boom")
