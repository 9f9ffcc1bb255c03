"""The baseline, as properties on artifacts: what LatestBlessedModel records on the
baseline Model the Evaluator reads, and what the Evaluator records about it on its
blessing (for the Pusher's model card and the run summary).

The baseline Model (int properties unless said):
  found              1 when a blessed version exists (0 on the first run: nothing to
                     compare with)
  serving_version    the version's number
  serving_path       its folder (string)
  source_model_uri   the Trainer output it was pushed from (string, from its model card;
                     "" for a version pushed by something else)
  same_as_candidate  1 when that is the candidate itself (a re-run whose Trainer was
                     cached): there is nothing to compare
The blessing, when a version was found:
  baseline_serving_version  that version's number
  baseline_is_candidate     1 when it was the candidate itself: nothing was compared
"""

FOUND = "found"
SERVING_VERSION = "serving_version"
SERVING_PATH = "serving_path"
SOURCE_MODEL_URI = "source_model_uri"
SAME_AS_CANDIDATE = "same_as_candidate"

BASELINE_SERVING_VERSION = "baseline_serving_version"
BASELINE_IS_CANDIDATE = "baseline_is_candidate"
