"""``pipeline_parameters.json``: read once into frozen, validated dataclasses.

- :mod:`slapp.params.sections`: the dataclasses, one per section;
- :mod:`slapp.params.validate`: values against their spec, rules across parameters;
- :mod:`slapp.params.placement`: where a setting lives (a backbone's own settings under
  ``model.<backbone>``, older layouts);
- :mod:`slapp.params.load`: the JSON file → :class:`PipelineParams`.
"""

from slapp.params.load import DEFAULT_PARAMS_FILE, load_params, params_from_dict
from slapp.params.sections import (AudioParams, EngineParams, FeatureParams, ModelParams,
                                   PathsParams, PipelineParams, ProcessParams, SlicingParams,
                                   SplitParams, TrainingParams)

__all__ = ["DEFAULT_PARAMS_FILE", "load_params", "params_from_dict", "AudioParams",
           "EngineParams", "FeatureParams", "ModelParams", "PathsParams", "PipelineParams",
           "ProcessParams", "SlicingParams", "SplitParams", "TrainingParams"]
