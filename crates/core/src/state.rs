//! The bot state machine of the contract (spec section 6), as data: one table says which event
//! is allowed from which states and where it leads. The store applies it inside the transaction
//! that holds the bot's row, so the rule is decided here once and enforced by the database's lock.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Defines a string-coded enum with its wire codes, `ALL` in contract order, and parsing.
macro_rules! coded_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $code)] $variant),+
        }

        impl $name {
            /// Every value, in the order the contract lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire code.
            pub const fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }

        impl FromStr for $name {
            type Err = UnknownCode;
            fn from_str(s: &str) -> Result<Self, UnknownCode> {
                match s {
                    $($code => Ok($name::$variant),)+
                    _ => Err(UnknownCode { kind: stringify!($name), code: s.to_owned() }),
                }
            }
        }
    };
}
pub(crate) use coded_enum;

/// A code that names no value of the enum it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unknown {kind}: {code}")]
pub struct UnknownCode {
    pub kind: &'static str,
    pub code: String,
}

coded_enum!(
    /// Where a bot is in its life.
    BotState {
        Ready => "ready",
        Joining => "joining",
        JoinedNotRecording => "joined_not_recording",
        JoinedRecording => "joined_recording",
        Leaving => "leaving",
        PostProcessing => "post_processing",
        FatalError => "fatal_error",
        WaitingRoom => "waiting_room",
        Ended => "ended",
        DataDeleted => "data_deleted",
        Scheduled => "scheduled",
        Staged => "staged",
        JoinedRecordingPaused => "joined_recording_paused",
        JoiningBreakoutRoom => "joining_breakout_room",
        LeavingBreakoutRoom => "leaving_breakout_room",
        JoinedRecordingPermissionDenied => "joined_recording_permission_denied",
    }
);

coded_enum!(
    /// Something that happened to a bot; each one fires `bot.state_change`.
    BotEventType {
        JoinRequested => "join_requested",
        Staged => "staged",
        CouldNotJoinMeeting => "could_not_join_meeting",
        FatalError => "fatal_error",
        PutInWaitingRoom => "put_in_waiting_room",
        JoinedMeeting => "joined_meeting",
        RecordingPermissionGranted => "recording_permission_granted",
        RecordingPermissionDenied => "recording_permission_denied",
        RecordingPaused => "recording_paused",
        RecordingResumed => "recording_resumed",
        MeetingEnded => "meeting_ended",
        LeaveRequested => "leave_requested",
        LeftMeeting => "left_meeting",
        PostProcessingCompleted => "post_processing_completed",
        DataDeleted => "data_deleted",
        BeganJoiningBreakoutRoom => "began_joining_breakout_room",
        BeganLeavingBreakoutRoom => "began_leaving_breakout_room",
        JoinedBreakoutRoom => "joined_breakout_room",
        LeftBreakoutRoom => "left_breakout_room",
    }
);

coded_enum!(
    /// Why an event happened, for the few event types that carry a reason.
    BotEventSubType {
        MeetingNotStartedWaitingForHost => "meeting_not_started_waiting_for_host",
        ProcessTerminated => "process_terminated",
        ZoomAuthorizationFailed => "zoom_authorization_failed",
        ZoomMeetingStatusFailed => "zoom_meeting_status_failed",
        UnpublishedZoomApp => "unpublished_zoom_app",
        RtmpConnectionFailed => "rtmp_connection_failed",
        ZoomSdkInternalError => "zoom_sdk_internal_error",
        UiElementNotFound => "ui_element_not_found",
        RequestToJoinDenied => "request_to_join_denied",
        UserRequested => "user_requested",
        AutoLeaveSilence => "auto_leave_silence",
        AutoLeaveOnlyParticipantInMeeting => "auto_leave_only_participant_in_meeting",
        HeartbeatTimeout => "heartbeat_timeout",
        MeetingNotFound => "meeting_not_found",
        BotNotLaunched => "bot_not_launched",
        WaitingRoomTimeoutExceeded => "waiting_room_timeout_exceeded",
        AutoLeaveMaxUptimeExceeded => "auto_leave_max_uptime_exceeded",
        LoginRequired => "login_required",
        BotLoginAttemptFailed => "bot_login_attempt_failed",
        OutOfCredits => "out_of_credits",
        UnableToConnectToMeeting => "unable_to_connect_to_meeting",
        AttendeeInternalError => "attendee_internal_error",
        HostDeniedPermission => "host_denied_permission",
        RequestTimedOut => "request_timed_out",
        HostClientCannotGrantPermission => "host_client_cannot_grant_permission",
        AutoLeaveCouldNotEnableClosedCaptions => "auto_leave_could_not_enable_closed_captions",
        AuthorizedUserNotInMeetingTimeoutExceeded => "authorized_user_not_in_meeting_timeout_exceeded",
        BlockedByCaptcha => "blocked_by_captcha",
        WebinarAttendeeNeedsPanelistPromotion => "webinar_attendee_needs_panelist_promotion",
        ZoomAppCannotJoinAnonymously => "zoom_app_cannot_join_anonymously",
        GlobalRuntimeTimeout => "global_runtime_timeout",
    }
);

use BotEventType as E;
use BotState as S;

/// The four states in which the bot is in the meeting ("joined*" in the contract).
const JOINED: &[BotState] = &[
    S::JoinedNotRecording,
    S::JoinedRecording,
    S::JoinedRecordingPaused,
    S::JoinedRecordingPermissionDenied,
];

impl BotState {
    /// States the bot never leaves on its own; a runner has nothing more to do.
    pub fn is_terminal(self) -> bool {
        matches!(self, S::Ended | S::FatalError | S::DataDeleted)
    }

    /// Whether the bot is in the meeting (any joined* state).
    pub fn is_joined(self) -> bool {
        JOINED.contains(&self)
    }
}

impl BotEventType {
    /// The states this event may happen in, in contract order.
    pub fn allowed_from(self) -> Vec<BotState> {
        S::ALL
            .iter()
            .copied()
            .filter(|s| self.is_allowed_from(*s))
            .collect()
    }

    fn is_allowed_from(self, s: BotState) -> bool {
        let breakout = matches!(s, S::JoiningBreakoutRoom | S::LeavingBreakoutRoom);
        match self {
            E::JoinRequested => matches!(s, S::Ready | S::Staged),
            E::Staged => s == S::Scheduled,
            E::CouldNotJoinMeeting => matches!(s, S::Joining | S::WaitingRoom),
            E::FatalError => !matches!(s, S::Ready | S::Ended | S::FatalError | S::DataDeleted),
            E::PutInWaitingRoom => s == S::Joining,
            E::JoinedMeeting => matches!(s, S::Joining | S::WaitingRoom),
            E::RecordingPermissionGranted => {
                matches!(
                    s,
                    S::JoinedNotRecording | S::JoinedRecordingPermissionDenied
                )
            }
            E::RecordingPermissionDenied => s.is_joined(),
            E::RecordingPaused => s == S::JoinedRecording,
            E::RecordingResumed => s == S::JoinedRecordingPaused,
            E::MeetingEnded => {
                s.is_joined() || breakout || matches!(s, S::WaitingRoom | S::Joining | S::Leaving)
            }
            E::LeaveRequested => {
                s.is_joined() || breakout || matches!(s, S::WaitingRoom | S::Joining)
            }
            E::LeftMeeting => s == S::Leaving,
            E::PostProcessingCompleted => s == S::PostProcessing,
            E::DataDeleted => matches!(s, S::FatalError | S::Ended),
            E::BeganJoiningBreakoutRoom | E::BeganLeavingBreakoutRoom => s.is_joined(),
            E::JoinedBreakoutRoom => s == S::JoiningBreakoutRoom,
            E::LeftBreakoutRoom => s == S::LeavingBreakoutRoom,
        }
    }

    /// Whether this event type may carry a sub-type (the contract allows four).
    pub fn takes_sub_type(self) -> bool {
        matches!(
            self,
            E::FatalError
                | E::CouldNotJoinMeeting
                | E::LeaveRequested
                | E::RecordingPermissionDenied
        )
    }
}

/// Why an event was refused; the messages are the contract's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("Event {event} not allowed when bot is in state {state}. It is only allowed in these states: {}", join_codes(.allowed))]
    NotAllowed {
        event: BotEventType,
        state: BotState,
        allowed: Vec<BotState>,
    },
    #[error("Event {event} does not take a sub type (got {sub_type})")]
    SubTypeNotAllowed {
        event: BotEventType,
        sub_type: BotEventSubType,
    },
}

fn join_codes(states: &[BotState]) -> String {
    states
        .iter()
        .map(|s| s.code())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The bot's state as the machine needs it: the current state and, while in or heading to a
/// breakout room, the state to return to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineState {
    pub state: BotState,
    pub breakout_return: Option<BotState>,
}

impl MachineState {
    pub fn new(state: BotState) -> Self {
        MachineState {
            state,
            breakout_return: None,
        }
    }
}

/// Applies one event: the next machine state, or the contract's refusal.
pub fn transition(
    current: MachineState,
    event: BotEventType,
    sub_type: Option<BotEventSubType>,
) -> Result<MachineState, TransitionError> {
    let state = current.state;
    if !event.is_allowed_from(state) {
        return Err(TransitionError::NotAllowed {
            event,
            state,
            allowed: event.allowed_from(),
        });
    }
    if let Some(sub_type) = sub_type.filter(|_| !event.takes_sub_type()) {
        return Err(TransitionError::SubTypeNotAllowed { event, sub_type });
    }
    let to = |s| MachineState::new(s);
    Ok(match event {
        E::JoinRequested => to(S::Joining),
        E::Staged => to(S::Staged),
        E::CouldNotJoinMeeting | E::FatalError => to(S::FatalError),
        E::PutInWaitingRoom => to(S::WaitingRoom),
        E::JoinedMeeting => to(S::JoinedNotRecording),
        E::RecordingPermissionGranted | E::RecordingResumed => to(S::JoinedRecording),
        E::RecordingPermissionDenied => to(S::JoinedRecordingPermissionDenied),
        E::RecordingPaused => to(S::JoinedRecordingPaused),
        E::MeetingEnded | E::LeftMeeting => to(S::PostProcessing),
        E::LeaveRequested => to(S::Leaving),
        E::PostProcessingCompleted => to(S::Ended),
        E::DataDeleted => to(S::DataDeleted),
        E::BeganJoiningBreakoutRoom => MachineState {
            state: S::JoiningBreakoutRoom,
            breakout_return: Some(state),
        },
        E::BeganLeavingBreakoutRoom => MachineState {
            state: S::LeavingBreakoutRoom,
            breakout_return: Some(state),
        },
        E::JoinedBreakoutRoom | E::LeftBreakoutRoom => {
            to(current.breakout_return.unwrap_or(S::JoinedNotRecording))
        }
    })
}

/// Whether entering `state` adds `bot_duration_seconds` to the event's metadata.
pub fn reports_duration(state: BotState) -> bool {
    matches!(state, S::Ended | S::FatalError | S::DataDeleted)
}

coded_enum!(
    /// The recording's progress, shown on the bot object.
    RecordingState {
        NotStarted => "not_started",
        InProgress => "in_progress",
        Paused => "paused",
        Complete => "complete",
        Failed => "failed",
    }
);

coded_enum!(
    /// The transcription's progress, shown on the bot object.
    TranscriptionState {
        NotStarted => "not_started",
        InProgress => "in_progress",
        Complete => "complete",
        Failed => "failed",
    }
);

/// Recording and transcription progress after the bot enters `new_state`, given where they were:
/// they start when recording starts and finish (or fail) with the bot.
pub fn media_states(
    new_state: BotState,
    recording: RecordingState,
    transcription: TranscriptionState,
) -> (RecordingState, TranscriptionState) {
    use RecordingState as R;
    use TranscriptionState as T;
    let started = recording != R::NotStarted;
    match new_state {
        S::JoinedRecording => (R::InProgress, T::InProgress),
        S::JoinedRecordingPaused => (R::Paused, transcription),
        S::Ended | S::PostProcessing if started => (R::Complete, T::Complete),
        S::FatalError if started => (R::Failed, T::Failed),
        _ => (recording, transcription),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's table, written out independently of the implementation above.
    fn expected(event: BotEventType, from: BotState) -> Option<BotState> {
        let joined = JOINED.contains(&from);
        let breakout = matches!(from, S::JoiningBreakoutRoom | S::LeavingBreakoutRoom);
        let allowed_to = |ok: bool, to: BotState| ok.then_some(to);
        match event {
            E::JoinRequested => allowed_to(from == S::Ready || from == S::Staged, S::Joining),
            E::Staged => allowed_to(from == S::Scheduled, S::Staged),
            E::CouldNotJoinMeeting => {
                allowed_to(from == S::Joining || from == S::WaitingRoom, S::FatalError)
            }
            E::FatalError => allowed_to(
                ![S::Ready, S::Ended, S::FatalError, S::DataDeleted].contains(&from),
                S::FatalError,
            ),
            E::PutInWaitingRoom => allowed_to(from == S::Joining, S::WaitingRoom),
            E::JoinedMeeting => allowed_to(
                from == S::Joining || from == S::WaitingRoom,
                S::JoinedNotRecording,
            ),
            E::RecordingPermissionGranted => allowed_to(
                from == S::JoinedNotRecording || from == S::JoinedRecordingPermissionDenied,
                S::JoinedRecording,
            ),
            E::RecordingPermissionDenied => allowed_to(joined, S::JoinedRecordingPermissionDenied),
            E::RecordingPaused => allowed_to(from == S::JoinedRecording, S::JoinedRecordingPaused),
            E::RecordingResumed => allowed_to(from == S::JoinedRecordingPaused, S::JoinedRecording),
            E::MeetingEnded => allowed_to(
                joined || breakout || [S::WaitingRoom, S::Joining, S::Leaving].contains(&from),
                S::PostProcessing,
            ),
            E::LeaveRequested => allowed_to(
                joined || breakout || [S::WaitingRoom, S::Joining].contains(&from),
                S::Leaving,
            ),
            E::LeftMeeting => allowed_to(from == S::Leaving, S::PostProcessing),
            E::PostProcessingCompleted => allowed_to(from == S::PostProcessing, S::Ended),
            E::DataDeleted => allowed_to(from == S::FatalError || from == S::Ended, S::DataDeleted),
            E::BeganJoiningBreakoutRoom => allowed_to(joined, S::JoiningBreakoutRoom),
            E::BeganLeavingBreakoutRoom => allowed_to(joined, S::LeavingBreakoutRoom),
            // The return state is set by the test below to JoinedRecording.
            E::JoinedBreakoutRoom => allowed_to(from == S::JoiningBreakoutRoom, S::JoinedRecording),
            E::LeftBreakoutRoom => allowed_to(from == S::LeavingBreakoutRoom, S::JoinedRecording),
        }
    }

    #[test]
    fn every_state_event_pair_follows_the_contract() {
        let mut allowed_pairs = 0;
        for &event in BotEventType::ALL {
            for &from in BotState::ALL {
                let current = MachineState {
                    state: from,
                    breakout_return: Some(S::JoinedRecording),
                };
                match (transition(current, event, None), expected(event, from)) {
                    (Ok(next), Some(to)) => {
                        allowed_pairs += 1;
                        assert_eq!(next.state, to, "{event} from {from}");
                    }
                    (Err(err), None) => {
                        let allowed = join_codes(&event.allowed_from());
                        assert_eq!(
                            err.to_string(),
                            format!("Event {event} not allowed when bot is in state {from}. It is only allowed in these states: {allowed}")
                        );
                    }
                    (got, want) => panic!("{event} from {from}: got {got:?}, want {want:?}"),
                }
            }
        }
        assert_eq!(BotState::ALL.len() * BotEventType::ALL.len(), 16 * 19);
        assert_eq!(
            allowed_pairs, 59,
            "the contract table allows 59 (state, event) pairs"
        );
    }

    #[test]
    fn breakout_rooms_return_to_the_state_before() {
        for &start in JOINED {
            let (began, ended) = [
                (E::BeganJoiningBreakoutRoom, E::JoinedBreakoutRoom),
                (E::BeganLeavingBreakoutRoom, E::LeftBreakoutRoom),
            ][usize::from(start == S::JoinedRecordingPaused)];
            let mid = transition(MachineState::new(start), began, None).unwrap();
            assert_eq!(mid.breakout_return, Some(start));
            let back = transition(mid, ended, None).unwrap();
            assert_eq!(back, MachineState::new(start));
        }
    }

    #[test]
    fn sub_types_only_on_the_four_event_types() {
        let joining = MachineState::new(S::Joining);
        let sub = Some(BotEventSubType::RequestToJoinDenied);
        assert!(transition(joining, E::CouldNotJoinMeeting, sub).is_ok());
        let err = transition(joining, E::JoinedMeeting, sub).unwrap_err();
        assert!(matches!(err, TransitionError::SubTypeNotAllowed { .. }));
        assert_eq!(
            BotEventType::ALL
                .iter()
                .filter(|e| e.takes_sub_type())
                .count(),
            4
        );
    }

    #[test]
    fn message_lists_states_in_contract_order() {
        let err = transition(MachineState::new(S::Ended), E::LeaveRequested, None).unwrap_err();
        assert_eq!(err.to_string(), "Event leave_requested not allowed when bot is in state ended. It is only allowed in these states: joining, joined_not_recording, joined_recording, waiting_room, joined_recording_paused, joining_breakout_room, leaving_breakout_room, joined_recording_permission_denied");
    }

    #[test]
    fn codes_round_trip() {
        for s in BotState::ALL {
            assert_eq!(s.code().parse::<BotState>().unwrap(), *s);
        }
        for e in BotEventType::ALL {
            assert_eq!(e.code().parse::<BotEventType>().unwrap(), *e);
        }
        for t in BotEventSubType::ALL {
            assert_eq!(t.code().parse::<BotEventSubType>().unwrap(), *t);
        }
        assert_eq!(BotEventSubType::ALL.len(), 31);
        assert!("nope".parse::<BotState>().is_err());
    }

    #[test]
    fn media_states_follow_the_bot() {
        use RecordingState as R;
        use TranscriptionState as T;
        let (r, t) = media_states(S::JoinedRecording, R::NotStarted, T::NotStarted);
        assert_eq!((r, t), (R::InProgress, T::InProgress));
        assert_eq!(media_states(S::Ended, r, t), (R::Complete, T::Complete));
        assert_eq!(media_states(S::FatalError, r, t), (R::Failed, T::Failed));
        assert_eq!(
            media_states(S::FatalError, R::NotStarted, T::NotStarted),
            (R::NotStarted, T::NotStarted)
        );
    }
}
