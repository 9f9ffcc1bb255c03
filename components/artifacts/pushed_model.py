"""RegistryPusher's PushedModel as the others read it: its int and string custom
properties (the first three as TFX's own Pusher sets them)."""

PUSHED = "pushed"
PUSHED_DESTINATION = "pushed_destination"
PUSHED_VERSION = "pushed_version"
PUSH_STATUS = "push_status"  # pushed | already_pushed | not_blessed
# registered | failed | disabled | unchanged | caught_up (a push cut short was finished)
REGISTRY_STATUS = "registry_status"
REGISTRY_VERSION = "registry_version"
REGISTRY_ERROR = "registry_error"
