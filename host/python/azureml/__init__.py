"""The part of the Azure ML SDK (`azureml.core`) that a script run by kvrun can use."""
