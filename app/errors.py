"""The root of hubsync's own errors. Every error the project raises on purpose sits under
`HubsyncError`, so a caller can catch "anything hubsync refused" in one clause, as httpx's
tree allows; each keeps the built-in base it had (ValueError, RuntimeError) as a second parent.

    HubsyncError
    ├── SettingsError                    app.settings: a setting's value is wrong
    ├── NotRunningError                  app.context: a part of the service is not started
    ├── ApiError                         app.api.errors: an answer with a status and a code
    ├── CommandError                     app.cli.common: a CLI command cannot go on
    ├── PreflightError                   app.preflight
    ├── HubSpotError                     app.hubspot.errors: its own tree of HubSpot failures
    ├── RateLimitPausedError             app.hubspot.ratelimit
    ├── PropertySchemaError              app.hubspot.properties
    ├── InvalidRuleError, InvalidScopeError, MappingError, JsonInputError,
    │   DeliveryError                                                    app.sync.core
    ├── LeaseLostError, PortalRefusedError                               app.sync.worker
    ├── IntakeUnavailableError                                           app.sync.intake
    ├── ResolutionError                                                  app.sync.operator
    ├── UnknownModeError                                                 app.sync.reconcile
    └── EntityBusyError, CompanyTakenError, LostRunError, UnknownDirectionError,
        IdempotencyMismatchError, IdempotencyInFlightError, LockTimeoutError   app.store

The sandbox's own `ApiError` is HubSpot's error body emulated for HubSpot's clients, not an
error of hubsync's, and stays outside the tree.
"""


class HubsyncError(Exception):
    """Something hubsync refused or could not do, with a message fit for an operator."""
