"""Why a user operation was refused."""


class EmailAlreadyRegistered(Exception):
    def __init__(self, email: str) -> None:
        super().__init__(f"an account with email {email!r} already exists")


class InvalidCredentials(Exception):
    """Wrong email or wrong password: deliberately the same error for both."""

    def __init__(self) -> None:
        super().__init__("the email or password is incorrect")
