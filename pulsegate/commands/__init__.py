"""One module per command group of the ``pulsegate`` console script."""
