from hermes_hub.errors import AuthenticationError, ConflictError, HubError, NotFoundError


class WeakPasswordError(HubError):
    status = 400
    code = "weak_password"


class InvalidCredentialsError(AuthenticationError):
    code = "invalid_credentials"


class EmailTakenError(ConflictError):
    code = "email_taken"


class AgentNotFoundError(NotFoundError):
    code = "agent_not_found"


class OrganizationNotFoundError(NotFoundError):
    code = "organization_not_found"


class EnrollmentNotFoundError(NotFoundError):
    code = "enrollment_not_found"


class InvalidPublicKeyError(HubError):
    status = 400
    code = "invalid_public_key"


class InvalidSignatureError(HubError):
    status = 400
    code = "invalid_signature"
